"""Every console, clock, sleep, random and entropy provider of this repository passes its suite."""

from __future__ import annotations

from typing import Any

import pytest
from unik.posix import (
    GetrandomEntropy,
    GetrandomRandom,
    PosixMonotonicClock,
    PosixSleep,
    PosixWallClock,
    StdoutConsole,
)
from unik.testing import (
    ConsoleConformance,
    EntropySourceConformance,
    MonotonicClockConformance,
    RandomConformance,
    SleepConformance,
    WallClockConformance,
)
from unik_entropy.device import BuiltinEntropy, FortunaRandom
from unik_vmguest.random import VirtioEntropy


class CapturedConsole(ConsoleConformance):
    """Consoles writing to file descriptor 1, captured by pytest's ``capfdbinary``."""

    @pytest.fixture(autouse=True)
    def _capture(self, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
        self.capture = capfdbinary
        self.seen = b""

    def written(self) -> bytes:
        self.seen += self.capture.readouterr().out
        return self.seen


class TestStdoutConsole(CapturedConsole):
    """The console of every target (in a VM the serial port or hvc0 is the init's standard output)."""

    async def connect(self) -> Any:
        return await StdoutConsole.connect()


class TestPosixMonotonicClock(MonotonicClockConformance):
    async def connect(self) -> Any:
        return await PosixMonotonicClock.connect()


class TestPosixWallClock(WallClockConformance):
    async def connect(self) -> Any:
        return await PosixWallClock.connect()


class TestPosixSleep(SleepConformance):
    async def connect(self) -> Any:
        return await PosixSleep.connect()


class TestGetrandomRandom(RandomConformance):
    async def connect(self) -> Any:
        return await GetrandomRandom.connect()


class TestFortunaRandom(RandomConformance):
    """unik-lib-entropy's Fortuna over the host's entropy device and the built-in sources."""

    async def connect(self) -> Any:
        return await FortunaRandom.connect(await GetrandomEntropy.connect())


class TestGetrandomEntropy(EntropySourceConformance):
    async def connect(self) -> Any:
        return await GetrandomEntropy.connect()


class TestBuiltinEntropy(EntropySourceConformance):
    async def connect(self) -> Any:
        return await BuiltinEntropy.connect()


class TestVirtioEntropy(EntropySourceConformance):
    """The VM guests' virtio-rng reader, here on /dev/urandom in place of /dev/hwrng (the same reads)."""

    async def connect(self) -> Any:
        return await VirtioEntropy.connect(path="/dev/urandom")
