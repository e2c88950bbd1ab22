"""Device providers of the unix target."""

from __future__ import annotations

from typing import Any, ClassVar

from unik.errors import did_you_mean
from unik.keys import Key, KeyValues
from unik.provider import BLOCK_OPTIONS, Configured, KeyRef, Option, Provider, Request, block_options

UNIX: frozenset[str] = frozenset({"unix"})

NET = Key(
    "net",
    "network: `socket` for the host's sockets (the default), `tap` for unik's own stack "
    "on existing TAP devices named after the network devices, DEVICE=TAP to give one device an existing TAP, "
    "or DEVICE=auto for a TAP made for the run (its host side gets an address in --ipv4's subnet)",
    default="socket", per_device=True, metavar="MODE|DEVICE=TAP|auto",
)
BLOCK = Key(
    "block", "block device backing file: DEVICE=FILE (e.g. storage=disk.img)",
    per_device=True, metavar="DEVICE=FILE",
)


def check_bind_address(value: Any, keys: KeyValues) -> None:
    """``--ipv4`` of the socket stack: ``ADDR[/PREFIX]``, as :class:`SocketStack` reads it."""
    import ipaddress

    try:
        ipaddress.IPv4Interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address (with an optional /PREFIX), e.g. 127.0.0.1") from None


IPV4 = Key(
    "ipv4", "IPv4 address/prefix of the stack (socket stack: the address to bind, default all)",
    metavar="ADDR/PREFIX", check=check_bind_address,
)


def net_mode(request: Request) -> str:
    """``socket`` or ``tap``: how the unix target gives the application a network."""
    plain = request.keys.raw("net")
    if plain not in ("socket", "tap"):
        raise request.keys.error("net", f"{plain!r} is neither `socket`, `tap` nor DEVICE=TAP (e.g. service=tap0)"
                                 f"{did_you_mean(str(plain), ('socket', 'tap'))}")
    return "tap" if request.keys.bindings("net") else plain


class _Unix(Provider):
    targets: ClassVar[frozenset[str] | None] = UNIX


class Console(_Unix):
    """Standard output."""

    PLUGIN_NAME = "unix.console"
    kind = "console"
    implementation = "unik_fdio.console:StdoutConsole"
    description = "standard output"


class MonotonicClock(_Unix):
    """CLOCK_MONOTONIC."""

    PLUGIN_NAME = "unix.monotonic-clock"
    kind = "monotonic_clock"
    implementation = "unik.posix:PosixMonotonicClock"
    description = "the host's CLOCK_MONOTONIC"


class WallClock(_Unix):
    """CLOCK_REALTIME."""

    PLUGIN_NAME = "unix.wall-clock"
    kind = "wall_clock"
    implementation = "unik.posix:PosixWallClock"
    description = "the host's CLOCK_REALTIME"


class Sleep(_Unix):
    """asyncio timers."""

    PLUGIN_NAME = "unix.sleep"
    kind = "sleep"
    implementation = "unik.posix:PosixSleep"
    description = "asyncio timers on the host's monotonic clock"


class Random(_Unix):
    """getrandom(2); a CSPRNG library (unik-lib-entropy) outranks it."""

    PLUGIN_NAME = "unix.getrandom"
    kind = "random"
    implementation = "unik.posix:GetrandomRandom"
    description = "the host kernel's CSPRNG through getrandom(2)"
    priority = -10


class Entropy(_Unix):
    """getrandom(2) as a raw entropy source."""

    PLUGIN_NAME = "unix.getrandom-entropy"
    kind = "entropy"
    implementation = "unik.posix:GetrandomEntropy"
    description = "the host kernel's getrandom(2) as an entropy source"
    priority = -10


class Block(_Unix):
    """A file as a disk."""

    PLUGIN_NAME = "unix.file-block"
    kind = "block"
    implementation = "unik_fdio.block:FileBlock"
    description = "a file as a disk (pread/pwrite in C)"
    keys = (BLOCK,)
    options = BLOCK_OPTIONS

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """The file comes from ``--block DEVICE=FILE``, else the table's ``file``."""
        options = block_options(request)
        options["name"] = request.device
        return Configured(options=options, key_options={"path": KeyRef("block", per_device=True)})


class Tap(_Unix):
    """A TAP device."""

    PLUGIN_NAME = "unix.tap"
    kind = "network"
    implementation = "unik_fdio.tap:TapNetwork"
    description = "a TAP device (TUNSETIFF, IFF_VNET_HDR offloads, batched reads in C)"
    keys = (NET,)
    options = (Option("offload", "negotiate checksum/TSO/GRO offloads with the host", "bool", default=True),)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """The TAP interface comes from ``--net DEVICE=TAP`` (default: the device's name)."""
        options = cls.table_options(request)
        options["name"] = request.device
        return Configured(options=options, key_options={"ifname": KeyRef("net", per_device=True)})


class SocketStack(_Unix):
    """The host's TCP/IP stack through sockets (mirage's ``--net=socket``)."""

    PLUGIN_NAME = "unix.socket-stack"
    kind = "stack"
    implementation = "unik_unix.socket_stack:SocketStack"
    description = "the host kernel's TCP/IP stack through sockets (--net=socket)"
    keys = (NET, IPV4)
    #: Outranks library stacks (unik-lib-tcpip) when ``--net=socket`` is chosen.
    priority = 10

    @classmethod
    def applies(cls, request: Request) -> bool:
        """Only with ``--net=socket`` (the default)."""
        return net_mode(request) == "socket"

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """The bind address comes from ``--ipv4``."""
        return Configured(key_options={"ipv4": KeyRef("ipv4")})


PROVIDERS: list[type[Provider]] = [
    Console, MonotonicClock, WallClock, Sleep, Random, Entropy, Block, Tap, SocketStack,
]
