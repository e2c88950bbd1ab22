"""The life-cycle events of VM snapshots: READY once, BEFORE_SNAPSHOT and RESUMED awaited, Resume recorded."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator

import pytest
from unik import lifecycle


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    lifecycle.reset()
    yield
    lifecycle.reset()


def test_ready_is_announced_once_per_process() -> None:
    seen: list[str] = []
    lifecycle.subscribe(lifecycle.READY, lambda: seen.append("ready"))
    lifecycle.announce(lifecycle.READY)
    lifecycle.announce(lifecycle.READY)  # a second listener: the application was ready already
    assert seen == ["ready"]
    assert lifecycle.announced(lifecycle.READY)


def test_announce_and_wait_awaits_what_subscribers_return_in_order() -> None:
    order: list[str] = []

    async def flush() -> None:
        await asyncio.sleep(0)
        order.append("flushed")

    lifecycle.subscribe(lifecycle.BEFORE_SNAPSHOT, flush)
    lifecycle.subscribe(lifecycle.BEFORE_SNAPSHOT, lambda: order.append("synced"))
    asyncio.run(lifecycle.announce_and_wait(lifecycle.BEFORE_SNAPSHOT))
    assert order == ["synced", "flushed"]  # every callback runs first, then their awaitables in order
    asyncio.run(lifecycle.announce_and_wait(lifecycle.BEFORE_SNAPSHOT))  # not once-only
    assert order == ["synced", "flushed", "synced", "flushed"]


def test_a_failing_awaitable_is_reported_and_the_others_still_run(capsys: pytest.CaptureFixture[str]) -> None:
    done: list[str] = []

    async def broken() -> None:
        raise OSError("disk gone")

    async def fine() -> None:
        done.append("fine")

    lifecycle.subscribe(lifecycle.RESUMED, broken)
    lifecycle.subscribe(lifecycle.RESUMED, fine)
    asyncio.run(lifecycle.announce_and_wait(lifecycle.RESUMED))
    assert done == ["fine"]
    assert "unik: a resumed subscriber failed" in capsys.readouterr().err


def test_announce_closes_awaitables_it_does_not_await() -> None:
    async def flush() -> None:
        raise AssertionError("not awaited by announce")

    lifecycle.subscribe(lifecycle.BEFORE_SNAPSHOT, flush)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would be a RuntimeWarning
        lifecycle.announce(lifecycle.BEFORE_SNAPSHOT)


def test_announce_resumed_records_how_the_host_restored() -> None:
    seen: list[lifecycle.Resume] = []
    lifecycle.subscribe(lifecycle.RESUMED, lambda: seen.append(lifecycle.resumed()))
    assert lifecycle.resumed().generation == 0  # never restored
    resume = lifecycle.Resume(1, {"52:54:00:00:00:01": "02:00:00:00:00:02"})
    asyncio.run(lifecycle.announce_resumed(resume))
    assert seen == [resume] and lifecycle.resumed() == resume


def test_renew_generators_reseeds_random_and_gives_openssl_fresh_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a restored memory image shares with every other restore: random's state, OpenSSL's DRBGs."""
    import random
    import types

    added: list[tuple[bytes, float]] = []
    fake_ssl = types.SimpleNamespace(RAND_add=lambda data, entropy: added.append((data, entropy)))
    monkeypatch.setitem(__import__("sys").modules, "_ssl", fake_ssl)
    state = random.getstate()
    try:
        random.seed(7)
        expected = random.getrandbits(64)
        random.seed(7)
        lifecycle.renew_generators()
        assert random.getrandbits(64) != expected
    finally:
        random.setstate(state)
    assert len(added) == 1 and len(added[0][0]) == lifecycle.RENEW_BYTES and added[0][1] == lifecycle.RENEW_BYTES
