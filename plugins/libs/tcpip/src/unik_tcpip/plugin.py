"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from unik.hookspecs import hookimpl
from unik.keys import Key
from unik.provider import Configured, KeyRef, Need, Provider, Request

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"

#: Same definition shape as the unix target's ``ipv4`` key (a plain string, not per device).
IPV4 = Key(
    "ipv4", "IPv4 address/prefix of the stack, e.g. 10.0.0.2/24 (unik's stack: DHCP when unset)",
    metavar="ADDR/PREFIX",
)
IPV4_GATEWAY = Key("ipv4_gateway", "IPv4 default gateway of unik's stack, e.g. 10.0.0.1", metavar="ADDR")


class TcpipStackProvider(Provider):
    """unik's own TCP/IP stack over a :class:`unik.devices.Network` device."""

    PLUGIN_NAME = "tcpip.stack"
    kind = "stack"
    implementation = "unik_tcpip.stack:TcpipStack"
    description = "unik's own TCP/IP stack (Ethernet, ARP, IPv4, ICMP, UDP, TCP) on a network device"
    priority = 0
    needs: ClassVar[Mapping[str, Need]] = {
        "network": Need("network", "service"),
        "clock": Need("monotonic_clock"),
        "sleep": Need("sleep"),
        "random": Need("random"),
    }
    keys: ClassVar[Sequence[Key]] = (IPV4, IPV4_GATEWAY)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Address and gateway come from ``--ipv4`` and ``--ipv4-gateway`` at run time."""
        return Configured(key_options={"ipv4": KeyRef("ipv4"), "ipv4_gateway": KeyRef("ipv4_gateway")})


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The stack provider."""
    return [TcpipStackProvider]
