"""Device providers of the hvt target: what the guest runtime serves to CPython.

The console is standard output (the console hypercall), the clocks are
``clock_gettime`` (the clock hypercall) and sleep is asyncio's timers (``epoll_wait``
on the poll hypercall): unik-lib-fdio's console and the core's POSIX devices, unchanged, over hvt's
Linux-syscall shim.  The network is unik-lib-fdio's TapNetwork over the runtime's
network device (:mod:`unik_solo5.hvt_net`), the block device its FileBlock over
the runtime's block device.
"""

from __future__ import annotations

from typing import ClassVar

from unik.provider import BLOCK_OPTIONS, Configured, KeyRef, Provider, Request, block_options

from .providers import BLOCK, NET, NET_MAC

HVT: frozenset[str] = frozenset({"hvt"})


class _Hvt(Provider):
    targets: ClassVar[frozenset[str] | None] = HVT


class Console(_Hvt):
    """Standard output: the monitor's console hypercall."""

    PLUGIN_NAME = "hvt.console"
    kind = "console"
    implementation = "unik_fdio.console:StdoutConsole"
    description = "the monitor's standard output"


class MonotonicClock(_Hvt):
    """CLOCK_MONOTONIC: the host's, by hypercall."""

    PLUGIN_NAME = "hvt.monotonic-clock"
    kind = "monotonic_clock"
    implementation = "unik.posix:PosixMonotonicClock"
    description = "the host's CLOCK_MONOTONIC (clock hypercall)"


class WallClock(_Hvt):
    """CLOCK_REALTIME: the host's, by hypercall."""

    PLUGIN_NAME = "hvt.wall-clock"
    kind = "wall_clock"
    implementation = "unik.posix:PosixWallClock"
    description = "the host's CLOCK_REALTIME (clock hypercall)"


class Sleep(_Hvt):
    """asyncio timers: epoll_wait in the runtime, the poll hypercall with a deadline."""

    PLUGIN_NAME = "hvt.sleep"
    kind = "sleep"
    implementation = "unik.posix:PosixSleep"
    description = "asyncio timers (the poll hypercall with a deadline)"


class Network(_Hvt):
    """A TAP the monitor opened (--net NAME=TAP), read and written by hypercalls."""

    PLUGIN_NAME = "hvt.tap"
    kind = "network"
    implementation = "unik_solo5.hvt_net:HvtNetwork"
    description = "a host TAP opened by unik-hvt (--net NAME=TAP): frames in batches, up to 32 per exit"
    keys = (NET, NET_MAC)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """The device's name; the TAP is the monitor's."""
        return Configured(options={"name": request.device}, key_options={"ifname": KeyRef("net", per_device=True)})


class Block(_Hvt):
    """A file the monitor opened (--block NAME=FILE, else the table's ``file``), by hypercalls."""

    PLUGIN_NAME = "hvt.block"
    kind = "block"
    implementation = "unik_solo5.hvt_net:HvtBlock"
    description = "a host file opened by unik-hvt (--block NAME=FILE): one hypercall per request"
    keys = (BLOCK,)
    options = BLOCK_OPTIONS

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """The table's options; the file is the monitor's (the runner reads ``file`` from the manifest)."""
        options = block_options(request)
        options["name"] = request.device
        return Configured(options=options, key_options={"path": KeyRef("block", per_device=True)})


PROVIDERS: list[type[Provider]] = [Console, MonotonicClock, WallClock, Sleep, Network, Block]
