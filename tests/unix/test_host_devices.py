"""Console, clocks, sleep and randomness on the unix target; its providers' decisions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from unik.devices import Console, EntropySource, MonotonicClock, Random, Sleep, WallClock
from unik.errors import BadKey, DeviceClosed
from unik.keys import KeyValues
from unik.posix import (
    GetrandomEntropy,
    GetrandomRandom,
    PosixMonotonicClock,
    PosixSleep,
    PosixWallClock,
    StdoutConsole,
)
from unik.provider import Request
from unik_unix import providers


def test_console_writes_lines_and_bytes(capfd: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        console = await StdoutConsole.connect()
        assert isinstance(console, Console)
        console.log("line one")
        await console.write(b"raw bytes\n")
        await console.disconnect()
        with pytest.raises(DeviceClosed):
            console.log("after")

    asyncio.run(main())
    assert capfd.readouterr().out == "line one\nraw bytes\n"


def test_clocks_and_sleep() -> None:
    async def main() -> tuple[int, int, int]:
        mono = await PosixMonotonicClock.connect()
        wall = await PosixWallClock.connect()
        sleep = await PosixSleep.connect()
        assert isinstance(mono, MonotonicClock) and isinstance(wall, WallClock) and isinstance(sleep, Sleep)
        t0 = mono.now_ns()
        await sleep.sleep_ns(20_000_000)
        await sleep.sleep(0.01)
        await sleep.sleep(-1)  # negative durations return at once
        return t0, mono.now_ns(), wall.now_ns()

    t0, t1, wall = asyncio.run(main())
    assert t1 - t0 >= 30_000_000
    assert abs(wall - time.time_ns()) < 5_000_000_000


def test_random_and_entropy() -> None:
    async def main() -> tuple[bytes, bytes, bytes]:
        rng = await GetrandomRandom.connect()
        src = await GetrandomEntropy.connect()
        assert isinstance(rng, Random) and isinstance(src, EntropySource)
        out = rng.generate(64), rng.generate(0), await src.read(1000)
        await rng.disconnect()
        with pytest.raises(DeviceClosed):
            rng.generate(1)
        return out

    a, empty, b = asyncio.run(main())
    assert len(a) == 64 and empty == b"" and len(b) == 1000
    assert len(set(b)) > 200  # 1000 bytes from a CSPRNG cover most byte values


def request(**args: list[str]) -> Request:
    keys = KeyValues([providers.NET, providers.BLOCK, providers.IPV4]).with_args(args)
    return Request("stack", "stack", "unix", {}, "tool.unik.devices.stack", "pyproject.toml", Path("."), keys)


def test_net_mode_selects_the_socket_stack() -> None:
    assert providers.SocketStack.applies(request())
    assert providers.SocketStack.applies(request(net=["socket"]))
    assert not providers.SocketStack.applies(request(net=["tap"]))
    assert not providers.SocketStack.applies(request(net=["service=tap0"]))
    with pytest.raises(BadKey, match="--net: 'wifi' is neither `socket`, `tap` nor DEVICE=TAP"):
        providers.SocketStack.applies(request(net=["wifi"]))


def test_block_provider_checks_sector_size() -> None:
    req = request()
    bad = Request("disk", "block", "unix", {"sector_size": 1000}, "tool.unik.devices.disk",
                  "pyproject.toml", Path("."), req.keys)
    with pytest.raises(Exception, match=r"\[tool.unik.devices.disk\] sector_size: must be 512, 1024, 2048 or 4096"):
        providers.Block.configure(bad)
    good = Request("disk", "block", "unix", {"file": "disk.img"}, "tool.unik.devices.disk",
                   "pyproject.toml", Path("."), req.keys)
    configured = providers.Block.configure(good)
    assert configured.options == {"file": "disk.img", "read_only": False, "sector_size": 512, "name": "disk"}
    assert configured.key_options["path"].key == "block"
