"""Device providers of the spt target: the unix target's implementations, sandbox-ready.

Console, clocks, sleep and randomness are the unix target's classes as they are (they
use only calls the policy admits: write, clock_gettime, epoll_wait, getrandom); the
network and block devices are :mod:`unik_solo5.devices`' wrappers around the
descriptors the tender opened.
"""

from __future__ import annotations

from typing import ClassVar

from unik.builtin import BakedKVRO
from unik.keys import Key
from unik.provider import Configured, Option, Provider, Request

SPT: frozenset[str] = frozenset({"spt"})

NET = Key(
    "net", "TAP device of a network device: DEVICE=TAP (e.g. service=tap0; solo5's --net:service=tap0 "
    "after --)", per_device=True, metavar="DEVICE=TAP",
)
BLOCK = Key(
    "block", "backing file of a block device: DEVICE=FILE (e.g. storage=disk.img)",
    per_device=True, metavar="DEVICE=FILE",
)


class _Spt(Provider):
    targets: ClassVar[frozenset[str] | None] = SPT


class Console(_Spt):
    """Standard output (the only console descriptor the filter admits besides stderr)."""

    PLUGIN_NAME = "spt.console"
    kind = "console"
    implementation = "unik_unix.console:StdoutConsole"
    description = "standard output"


class MonotonicClock(_Spt):
    """CLOCK_MONOTONIC (vDSO, or clock_gettime)."""

    PLUGIN_NAME = "spt.monotonic-clock"
    kind = "monotonic_clock"
    implementation = "unik.posix:PosixMonotonicClock"
    description = "the host's CLOCK_MONOTONIC"


class WallClock(_Spt):
    """CLOCK_REALTIME (vDSO, or clock_gettime)."""

    PLUGIN_NAME = "spt.wall-clock"
    kind = "wall_clock"
    implementation = "unik.posix:PosixWallClock"
    description = "the host's CLOCK_REALTIME"


class Sleep(_Spt):
    """asyncio timers (epoll_wait timeouts)."""

    PLUGIN_NAME = "spt.sleep"
    kind = "sleep"
    implementation = "unik.posix:PosixSleep"
    description = "asyncio timers on the host's monotonic clock"


class Random(_Spt):
    """getrandom(2), which the allowlist admits.

    It outranks unik-lib-entropy's Fortuna under spt for now: Fortuna's sources open
    files (``/dev/hwrng``) when they connect and on reseeds, which happens after the
    filter is on. Seeding Fortuna before the filter (issue 8) will lower this again.
    """

    PLUGIN_NAME = "spt.getrandom"
    kind = "random"
    implementation = "unik.posix:GetrandomRandom"
    description = "the host kernel's CSPRNG through getrandom(2) (admitted by the allowlist)"
    priority = 10


class Entropy(_Spt):
    """getrandom(2) as a raw entropy source."""

    PLUGIN_NAME = "spt.getrandom-entropy"
    kind = "entropy"
    implementation = "unik.posix:GetrandomEntropy"
    description = "the host kernel's getrandom(2) as an entropy source"
    priority = -10


class Block(_Spt):
    """A block file the tender opened (BLOCK_BASIC)."""

    PLUGIN_NAME = "spt.block"
    kind = "block"
    implementation = "unik_solo5.devices:SptBlock"
    description = "a file opened by the tender (--block:NAME=FILE), pread/pwrite in C"
    options = (Option("sector_size", "sector size in bytes", "int", default=512),)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Only the sector size is configurable; the file is the tender's."""
        options = cls.table_options(request)
        if options["sector_size"] not in (512, 1024, 2048, 4096):
            raise request.error("sector_size", "must be 512, 1024, 2048 or 4096")
        options["name"] = request.device
        return Configured(options=options)


class Tap(_Spt):
    """A TAP the tender opened (NET_BASIC)."""

    PLUGIN_NAME = "spt.tap"
    kind = "network"
    implementation = "unik_solo5.devices:SptTap"
    description = "a TAP opened by the tender (--net:NAME=TAP), batched reads and writev in C"

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """The device's name finds its descriptor."""
        return Configured(options={"name": request.device})


class MemoryKV(_Spt):
    """Baked files served from memory (read before the filter; the core's store reads them later)."""

    PLUGIN_NAME = "spt.memory-kv"
    kind = "kv_ro"
    implementation = "unik_solo5.kv:MemoryKVRO"
    description = "read-only key/value store baked into the artifact, loaded into memory before the filter"
    options = BakedKVRO.options
    #: Outranks the core's baked store, which reads files on demand.
    priority = 10

    @classmethod
    def applies(cls, request: Request) -> bool:
        """When the device table names a ``source`` directory."""
        return BakedKVRO.applies(request)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Bake the files as the core's store does (``assets/<device>/``)."""
        return BakedKVRO.configure(request)


PROVIDERS: list[type[Provider]] = [
    Console, MonotonicClock, WallClock, Sleep, Random, Entropy, Block, Tap, MemoryKV,
]
