"""The Random device, fork safety, helpers, events and ent on a live pipe."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from host_tools import needs
from unik.devices import Random
from unik.errors import DeviceClosed
from unik_entropy import events, helpers
from unik_entropy.device import FortunaRandom
from unik_entropy.fortuna import Fortuna


class StuckEntropy:
    name = "stub"
    quality = 8.0

    async def read(self, n: int) -> bytes:
        return b"\0" * n

    async def disconnect(self) -> None:
        return None


def test_device_connects_rejects_stuck_device_and_reseeds() -> None:
    async def main() -> None:
        dev = await FortunaRandom.connect(StuckEntropy(), reseed_interval=0.01)  # type: ignore[arg-type]
        assert isinstance(dev, Random)
        assert len(dev.generate(32)) == 32
        assert any("stub" in f for f in dev.failures)
        assert helpers.default() is dev
        before = dev.rng.reseeds
        for _ in range(3):
            await dev.reseed_round()
        await asyncio.sleep(0.11)
        dev.generate(1)
        assert dev.rng.reseeds > before
        await dev.disconnect()
        with pytest.raises(DeviceClosed):
            dev.generate(1)
    asyncio.run(asyncio.wait_for(main(), 20))


def test_fork_child_output_differs() -> None:
    rng = Fortuna()
    rng.bootstrap()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(w, rng.generate(32))
        os._exit(0)
    os.close(w)
    child = os.read(r, 32)
    os.waitpid(pid, 0)
    os.close(r)
    assert len(child) == 32 and child != rng.generate(32)


def test_helpers_and_events() -> None:
    assert 0 <= helpers.randbelow(10) < 10
    assert len(helpers.token_hex(8)) == 16
    items = list(range(20))
    helpers.shuffle(items)
    assert sorted(items) == list(range(20))
    rng = Fortuna(sources=[])
    rng.seed(b"x")
    events.attach(rng)
    src = events.source("test.rx")
    for i in range(16):
        src.tick(i)
    events.detach(rng)
    assert src.events >= 1 and rng.pools.pools[0].length + rng.pools.pools[1].length > 0


@needs("ent")
def test_ent_on_live_pipe() -> None:
    unik = subprocess.run([sys.executable, "-m", "unik.cli", "random", "-n", "1M"], capture_output=True, timeout=60)
    res = subprocess.run(["ent", "-t"], input=unik.stdout, capture_output=True, timeout=60)
    fields = res.stdout.decode().splitlines()[1].split(",")
    entropy, mean, serial = float(fields[2]), float(fields[4]), float(fields[6])
    assert entropy > 7.999 and abs(mean - 127.5) < 0.5 and abs(serial) < 0.01, res.stdout


def test_resumed_makes_a_connected_generator_reseed() -> None:
    """The runtime's RESUMED (a snapshot restored) renews the generators' epoch while a device is connected."""
    from unik import lifecycle
    from unik_entropy import forks

    async def main() -> None:
        device = await FortunaRandom.connect(None)
        try:
            before = forks.epoch()
            lifecycle.announce(lifecycle.RESUMED)
            assert forks.epoch() != before
            first = device.generate(16)
            assert len(first) == 16
        finally:
            await device.disconnect()
        after = forks.epoch()
        lifecycle.announce(lifecycle.RESUMED)
        assert forks.epoch() == after  # disconnected: no longer subscribed

    asyncio.run(main())
