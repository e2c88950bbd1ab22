"""Device providers of the unix target."""

from __future__ import annotations

from typing import Any, ClassVar

from unik.errors import did_you_mean
from unik.keys import Key, KeyValues
from unik.provider import BlockProvider, Configured, DeviceProvider, KeyRef, Option, Provider, Request, posix_providers

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


Console, MonotonicClock, WallClock, Sleep, Random, Entropy = posix_providers(_Unix, "unix", {
    "console": "standard output",
    "monotonic_clock": "the host's CLOCK_MONOTONIC",
    "wall_clock": "the host's CLOCK_REALTIME",
    "sleep": "asyncio timers on the host's monotonic clock",
    "random": "the host kernel's CSPRNG through getrandom(2)",
    "entropy": "the host kernel's getrandom(2) as an entropy source",
})


class Block(_Unix, BlockProvider):
    """A file as a disk: ``--block DEVICE=FILE``, else the table's ``file``."""

    PLUGIN_NAME = "unix.file-block"
    implementation = "unik_fdio.block:FileBlock"
    description = "a file as a disk (pread/pwrite in C)"
    keys = (BLOCK,)
    device_keys = (("path", "block"),)


class Tap(_Unix, DeviceProvider):
    """A TAP device: ``--net DEVICE=TAP`` (default: the device's name)."""

    PLUGIN_NAME = "unix.tap"
    kind = "network"
    implementation = "unik_fdio.tap:TapNetwork"
    description = "a TAP device (TUNSETIFF, IFF_VNET_HDR offloads, batched reads in C)"
    keys = (NET,)
    options = (Option("offload", "negotiate checksum/TSO/GRO offloads with the host", "bool", default=True),)
    device_keys = (("ifname", "net"),)


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
