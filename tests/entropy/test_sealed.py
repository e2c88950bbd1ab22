"""A process that gives up its system calls (unik's spt sandbox): seeded from every source, then only CPU sources.

The devices connect with the process's rights whole and seed from every source; the
runtime's ``BEFORE_SEAL``, which the sandbox announces, leaves them the sources that make
no system call.  ``sources.seal()`` is irreversible in a process, so these tests undo it
with monkeypatch; tests/solo5 runs the same under a real seccomp filter.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Iterator

import pytest
from unik import lifecycle
from unik_entropy import sources
from unik_entropy.device import BuiltinEntropy, FortunaRandom
from unik_entropy.fortuna import Fortuna

CPU_SOURCES = {"rdseed", "rdrand", "jitter"}


@pytest.fixture
def sealable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo ``seal()`` and the life-cycle's announcements after the test."""
    monkeypatch.setattr(sources, "_sealed", False)
    lifecycle.reset()
    yield
    lifecycle.reset()


def _no_system_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the filter would kill, made to fail the test instead."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a sealed source made a system call")

    monkeypatch.setattr(os, "getrandom", refused)
    monkeypatch.setattr(builtins, "open", refused)


def test_before_seal_keeps_only_cpu_sources(sealable: None, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {s.name for s in sources.builtin_sources()}
    assert "getrandom" in before and "jitter" in before
    rng = Fortuna()
    rng.bootstrap()  # getrandom included: the process still has its system calls
    assert "getrandom" in {s.name for s in rng.sources}
    rng.before_seal()
    assert sources.sealed()
    _no_system_calls(monkeypatch)
    after = sources.builtin_sources()
    assert {s.name for s in after} == before - {"getrandom", "hwrng"}
    assert all(not s.syscalls for s in after)
    assert {s.name for s in rng.sources} == before - {"getrandom", "hwrng"}
    assert rng.read_sources(32, 8) >= 32 and len(rng.generate(64)) == 64
    getrandom = sources.Source("getrandom", sources.GETRANDOM, 8.0, os.getrandom, syscalls=True)
    with pytest.raises(OSError, match="needs system calls"):
        getrandom.read(8)


def test_the_devices_seal_on_the_runtimes_before_seal_then_reseed_without_system_calls(
    sealable: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        entropy = await BuiltinEntropy.connect()
        dev = await FortunaRandom.connect(entropy, reseed_interval=0.01)
        try:
            assert "getrandom" in {s.name for s in dev.rng.sources}  # seeded before the seal
            first = dev.generate(64)
            lifecycle.announce(lifecycle.BEFORE_SEAL)  # what spt's boot does; no import of this library
            assert sources.sealed()
            _no_system_calls(monkeypatch)
            assert {s.name for s in dev.rng.sources} <= CPU_SOURCES
            assert {s.name for s in entropy.sources} <= CPU_SOURCES
            assert len(await entropy.read(16)) == 16
            while dev.rounds < 3:
                await asyncio.sleep(0.01)
            assert dev.generate(64) != first and dev.failures == []
            assert dev.rng.reseeds >= 1 or dev.rng.pools.pools[0].length > 0
        finally:
            await dev.disconnect()
            await entropy.disconnect()

    asyncio.run(go())


def test_disconnected_devices_no_longer_listen_for_before_seal(sealable: None) -> None:
    async def go() -> None:
        entropy = await BuiltinEntropy.connect()
        dev = await FortunaRandom.connect(entropy)
        await dev.disconnect()
        await entropy.disconnect()

    asyncio.run(go())
    lifecycle.announce(lifecycle.BEFORE_SEAL)
    assert not sources.sealed()
