"""A process that gives up its system calls (unik's spt sandbox): reserve, seal, then only CPU sources.

``sources.seal()`` is irreversible in a process, so these tests undo it with monkeypatch;
tests/solo5 runs the same under a real seccomp filter.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Iterator

import pytest
from unik.errors import NotSeeded
from unik_entropy import fortuna, sources
from unik_entropy.device import BuiltinEntropy, FortunaRandom
from unik_entropy.fortuna import Fortuna, reserve_seed


@pytest.fixture
def sealable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo ``seal()`` and forget any reserve after the test."""
    monkeypatch.setattr(sources, "_sealed", False)
    yield
    fortuna._take_reserve()


def _no_system_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the filter would kill, made to fail the test instead."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a sealed source made a system call")

    monkeypatch.setattr(os, "getrandom", refused)
    monkeypatch.setattr(builtins, "open", refused)


def test_reserve_then_seal_keeps_only_cpu_sources(sealable: None, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {s.name for s in sources.builtin_sources()}
    assert "getrandom" in before and "jitter" in before
    got = reserve_seed(32, then_seal=True)
    assert got >= 32 * 2  # getrandom and jitter at least
    assert sources.sealed()
    _no_system_calls(monkeypatch)
    after = sources.builtin_sources()
    assert {s.name for s in after} == before - {"getrandom", "hwrng"}
    assert all(not s.syscalls for s in after)
    getrandom = sources.Source("getrandom", sources.GETRANDOM, 8.0, os.getrandom, syscalls=True)
    with pytest.raises(OSError, match="needs system calls"):
        getrandom.read(8)


def test_only_the_first_bootstrap_takes_the_reserve_and_it_is_wiped(sealable: None) -> None:
    reserve_seed(32)
    assert len(fortuna._reserve) > 32
    held = fortuna._reserve
    first = Fortuna(sources=[])
    first.bootstrap()  # no source at all: the reserve alone seeds it
    assert first.seeded and len(first.generate(32)) == 32
    assert held is fortuna._reserve and len(held) == 0
    with pytest.raises(NotSeeded):
        Fortuna(sources=[]).bootstrap()


def test_each_reserve_seeds_a_different_generator(sealable: None) -> None:
    reserve_seed(32)
    a = Fortuna(sources=[])
    a.bootstrap()
    reserve_seed(32)
    b = Fortuna(sources=[])
    b.bootstrap()
    assert a.generate(64) != b.generate(64)


def test_the_device_connects_and_reseeds_without_system_calls(
    sealable: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reserve_seed(then_seal=True)
    _no_system_calls(monkeypatch)

    async def go() -> None:
        entropy = await BuiltinEntropy.connect()
        dev = await FortunaRandom.connect(entropy, reseed_interval=0.01)
        try:
            assert {s.name for s in dev.rng.sources} <= {"rdseed", "rdrand", "jitter"}
            first = dev.generate(64)
            while dev.rounds < 3:
                await asyncio.sleep(0.01)
            assert dev.generate(64) != first and dev.failures == []
            assert dev.rng.reseeds >= 1 or dev.rng.pools.pools[0].length > 0
        finally:
            await dev.disconnect()
            await entropy.disconnect()

    asyncio.run(go())
