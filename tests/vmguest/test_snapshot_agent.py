"""The guest's snapshot agent without a VM: its exchange with the host over a pseudo-terminal (COM2's stand-in)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
from unik import lifecycle
from unik_vmguest import snapshot

SEED = "ab" * 32


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    lifecycle.reset()
    yield
    lifecycle.reset()


def test_a_resume_line_is_parsed_and_bad_ones_refused() -> None:
    msg = snapshot.ResumeMessage(f"resume 2 1700000000000000000 {SEED} 52:54:00:00:00:01=02:AA:00:00:00:02\n")
    assert (msg.generation, msg.time_ns, msg.seed) == (2, 1700000000000000000, bytes.fromhex(SEED))
    assert msg.macs == {"52:54:00:00:00:01": "02:aa:00:00:00:02"}
    for bad in ("hello", f"resume 0 1 {SEED}", "resume 1 1 abcd", f"resume 1 1 {SEED} 52:54:00=02:00:00:00:00:02"):
        with pytest.raises(ValueError):
            snapshot.ResumeMessage(bad)


def test_the_agent_does_nothing_unless_the_vm_was_booted_for_a_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(snapshot.ENV, raising=False)
    assert not snapshot.requested()
    monkeypatch.setenv(snapshot.ENV, "1")
    assert snapshot.requested()


def test_checkpoint_writes_back_says_ready_blocks_and_renews_on_the_hosts_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    host, guest = os.openpty()
    monkeypatch.setattr(snapshot, "CHANNEL", os.ttyname(guest))
    done: list[str] = []
    monkeypatch.setattr(snapshot, "reseed_kernel", lambda seed: done.append(f"kernel {seed.hex()[:4]}"))
    monkeypatch.setattr(snapshot, "step_wall_clock", lambda ns: done.append(f"clock {ns}"))

    def set_macs(macs: dict[str, str]) -> list[str]:
        done.append(f"macs {sorted(macs.items())}")
        return []

    monkeypatch.setattr(snapshot, "set_macs", set_macs)

    async def flushed() -> None:
        done.append("flushed")

    lifecycle.subscribe(lifecycle.BEFORE_SNAPSHOT, flushed)
    lifecycle.subscribe(lifecycle.RESUMED, lambda: done.append(f"resumed {lifecycle.resumed().generation}"))
    said: list[bytes] = []

    def the_host() -> None:  # reads the guest's readiness, restores it, reads that it runs again
        buf = b""
        while b"unik-ready\n" not in buf:
            buf += os.read(host, 64)
        said.append(buf)
        done.append("saved")
        os.write(host, f"resume 1 1700000000000000000 {SEED} 52:54:00:00:00:01=02:00:00:00:00:02\n".encode())
        buf = b""
        while b"\n" not in buf:
            buf += os.read(host, 64)
        said.append(buf)

    thread = threading.Thread(target=the_host, daemon=True)
    thread.start()
    try:
        asyncio.run(asyncio.wait_for(snapshot.checkpoint(), 30))
        thread.join(10)
    finally:
        os.close(host)
        os.close(guest)
    assert said == [b"unik-ready\n", b"unik-resumed 1\n"]
    assert done == ["flushed", "saved", "kernel abab", "clock 1700000000000000000",
                    "macs [('52:54:00:00:00:01', '02:00:00:00:00:02')]", "resumed 1"]
