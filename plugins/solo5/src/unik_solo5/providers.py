"""Device providers of the spt target: unik-lib-fdio's devices, sandbox-ready.

The console, clocks and sleep are the core's POSIX devices, as on unix
(:func:`unik.provider.posix_providers`; they use only calls the policy admits: write,
clock_gettime, epoll_wait).  The network and block
devices are unik-lib-fdio's :class:`~unik_fdio.tap.TapNetwork` and
:class:`~unik_fdio.block.FileBlock` adopting the descriptors the tender opened (see
:mod:`unik_solo5.devices`).  ``random`` and ``entropy`` come from unik-lib-entropy
(installed beside this target, which does not import it): Fortuna, seeded as it connects,
before the filter, from every source (getrandom included) and fed after it by RDSEED,
RDRAND, CPU jitter and event timing, which need no system call (it subscribes to the
runtime's ``BEFORE_SEAL``).
"""

from __future__ import annotations

import re
import sys
from typing import Any, ClassVar

from unik.builtin import BakedKVRO
from unik.errors import RunError
from unik.keys import Key, KeyValues
from unik.provider import BlockProvider, Configured, DeviceProvider, Provider, Request, posix_providers

SPT: frozenset[str] = frozenset({"spt"})

NET = Key(
    "net", "TAP device of a network device: DEVICE=TAP, an existing TAP (e.g. service=tap0; solo5's "
    "--net:service=tap0 after --), or DEVICE=auto for a TAP made for the run", per_device=True,
    metavar="DEVICE=TAP|auto",
)
BLOCK = Key(
    "block", "backing file of a block device: DEVICE=FILE (e.g. storage=disk.img)",
    per_device=True, metavar="DEVICE=FILE",
)
NET_MAC = Key(
    "net_mac", "MAC address of a network device: DEVICE=MAC (default: random, picked by the tender; "
    "solo5's --net-mac:service=MAC after --)", per_device=True, metavar="DEVICE=MAC",
)
_MIB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
#: Below this CPython and the runtime do not start.
MIN_MEM_MIB = 64


def mem_mib(size: str) -> int:
    """``--mem`` as the VM targets take it (256M, 1G; a plain number is MiB), in MiB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)", size.strip())
    if not m:
        raise RunError(f"--mem {size!r} is not a memory size: give one as 256M or 1G (a plain number is MiB)")
    mib = int(float(m.group(1)) * _MIB[(m.group(2) or "m").lower()])
    if mib < MIN_MEM_MIB:
        raise RunError(f"--mem {size}: an spt application needs at least {MIN_MEM_MIB} MiB "
                       "(CPython's own address space counts)")
    return mib


def check_mem(value: Any, keys: KeyValues) -> None:
    """A size the tender can enforce."""
    try:
        mem_mib(str(value))
    except RunError as exc:
        raise ValueError(str(exc)) from None


MEM = Key("mem", "memory limit of the process, CPython included (256M, 1G; a plain number is MiB): its "
          "address space (RLIMIT_AS)", default="256M", metavar="SIZE", check=check_mem)
SHOW_POLICY = Key("show_policy", "print the spt seccomp allowlist and exit (solo5's --show-policy)", "bool")
# Set by the tender when it starts the application, never by users.
FD = Key("fd", "descriptor the spt tender opened for a device (set by the tender)", "int",
         per_device=True, metavar="DEVICE=FD", internal=True)
MTU = Key("mtu", "MTU of a network device's TAP (set by the spt tender)", "int",
          per_device=True, metavar="DEVICE=MTU", internal=True)
SIZE = Key("size", "size in bytes of a block device's file (set by the spt tender)", "int",
           per_device=True, metavar="DEVICE=BYTES", internal=True)


class _Spt(Provider):
    targets: ClassVar[frozenset[str] | None] = SPT


Console, MonotonicClock, WallClock, Sleep = posix_providers(_Spt, "spt", {
    "console": "standard output",
    "monotonic_clock": "the host's CLOCK_MONOTONIC",
    "wall_clock": "the host's CLOCK_REALTIME",
    "sleep": "asyncio timers on the host's monotonic clock",
})


class Block(_Spt, BlockProvider):
    """A block file the tender opened (BLOCK_BASIC), adopted by unik-lib-fdio's FileBlock.

    The tender opens ``--block``'s file, else ``file`` (the runner reads it from the manifest).
    """

    PLUGIN_NAME = "spt.block"
    implementation = "unik_fdio.block:FileBlock"
    description = "a file opened by the tender (--block:NAME=FILE), pread/pwrite in C on the loop's thread"
    keys = (BLOCK, FD, SIZE)
    device_keys = (("path", "block"), ("fd", "fd"), ("size", "size"))

    @classmethod
    def table_options(cls, request: Request) -> dict[str, Any]:
        """The table's options; requests stay on the loop's thread (the filter admits no threads)."""
        return {**super().table_options(request), "inline_limit": sys.maxsize}


class Tap(_Spt, DeviceProvider):
    """A TAP the tender opened (NET_BASIC), adopted by unik-lib-fdio's TapNetwork: name, descriptor, MTU, MAC."""

    PLUGIN_NAME = "spt.tap"
    kind = "network"
    implementation = "unik_fdio.tap:TapNetwork"
    description = "a TAP opened by the tender (--net:NAME=TAP), batched reads and writev in C"
    keys = (NET, FD, MTU, NET_MAC)
    device_keys = (("ifname", "net"), ("fd", "fd"), ("mtu", "mtu"), ("mac", "net_mac"))


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
    Console, MonotonicClock, WallClock, Sleep, Block, Tap, MemoryKV,
]
