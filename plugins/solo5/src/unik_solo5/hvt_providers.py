"""Device providers of the hvt target: what the guest runtime serves to CPython.

The console is standard output (the console hypercall), the clocks are
``clock_gettime`` (the TSC, anchored by the monitor's clocks) and sleep is asyncio's timers
(``epoll_wait`` on the turn hypercall): the core's POSIX devices (:func:`unik.provider.posix_providers`),
unchanged, over hvt's Linux-syscall shim.  The network is unik-lib-fdio's TapNetwork over the runtime's
network device (:mod:`unik_solo5.hvt_net`), the block device its FileBlock over
the runtime's block device.
"""

from __future__ import annotations

from typing import ClassVar

from unik.provider import BlockProvider, DeviceProvider, Provider, posix_providers

from .providers import BLOCK, NET, NET_MAC

HVT: frozenset[str] = frozenset({"hvt"})


class _Hvt(Provider):
    targets: ClassVar[frozenset[str] | None] = HVT


Console, MonotonicClock, WallClock, Sleep = posix_providers(_Hvt, "hvt", {
    "console": "the monitor's standard output",
    "monotonic_clock": "the host's CLOCK_MONOTONIC (clock hypercall)",
    "wall_clock": "the host's CLOCK_REALTIME (clock hypercall)",
    "sleep": "asyncio timers (the turn hypercall with a deadline)",
})


class Network(_Hvt, DeviceProvider):
    """A TAP the monitor opened (--net NAME=TAP), read and written by hypercalls."""

    PLUGIN_NAME = "hvt.tap"
    kind = "network"
    implementation = "unik_solo5.hvt_net:HvtNetwork"
    description = "a host TAP opened by unik-hvt (--net NAME=TAP): frames in batches, an exit per event-loop turn"
    keys = (NET, NET_MAC)
    device_keys = (("ifname", "net"),)


class Block(_Hvt, BlockProvider):
    """A file the monitor opened (--block NAME=FILE, else the table's ``file``), by hypercalls."""

    PLUGIN_NAME = "hvt.block"
    implementation = "unik_solo5.hvt_net:HvtBlock"
    description = "a host file opened by unik-hvt (--block NAME=FILE): one hypercall per request"
    keys = (BLOCK,)
    device_keys = (("path", "block"),)


PROVIDERS: list[type[Provider]] = [Console, MonotonicClock, WallClock, Sleep, Network, Block]
