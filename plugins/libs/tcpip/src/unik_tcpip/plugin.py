"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from unik.hookspecs import hookimpl
from unik.keys import Key, KeyValues
from unik.provider import Configured, KeyRef, Need, Provider, Request

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact (with what they import); the rest is build-time code.
UNIK_RUNTIME = ("unik_tcpip.stack", "unik_tcpip.aio")


def check_ipv4(value: Any, keys: KeyValues) -> None:
    """``--ipv4`` as the stack will read it: ADDR/PREFIX, a host's address (not the network's)."""
    from .stack import ipv4_config  # the stack's own parser, so configure and start agree

    ipv4_config(value, None)


def check_gateway(value: Any, keys: KeyValues) -> None:
    """``--ipv4-gateway``: an address inside the network of ``--ipv4``, which it needs."""
    from .stack import InvalidIPv4, ipv4_config

    ipv4 = keys.raw("ipv4") if "ipv4" in keys.keys else None
    if not ipv4:
        raise ValueError("needs --ipv4 too (without --ipv4 the stack asks DHCP, and the gateway comes from it)")
    try:
        ipv4_config(ipv4, value)
    except InvalidIPv4 as exc:
        if exc.key == "ipv4_gateway":
            raise
        # A bad --ipv4 is reported by its own check.


def check_ipv6(value: Any, keys: KeyValues) -> None:
    """``--ipv6``: ADDR/PREFIX of a global or unique-local unicast address."""
    from .ipv6.config import ipv6_config

    ipv6_config(value, None)


def check_ipv6_gateway(value: Any, keys: KeyValues) -> None:
    """``--ipv6-gateway``: link-local, or inside the prefix of ``--ipv6``."""
    from .ipv6.config import InvalidIPv6, ipv6_config

    ipv6 = keys.raw("ipv6") if "ipv6" in keys.keys else None
    try:
        ipv6_config(ipv6 or "", value)
    except InvalidIPv6 as exc:
        if exc.key == "ipv6_gateway":
            raise
        # A bad --ipv6 is reported by its own check.


def check_min_rto(value: Any, keys: KeyValues) -> None:
    """``--tcp-min-rto``: seconds, at least a millisecond and at most the maximum RTO."""
    from .stack import min_rto_problem

    problem = min_rto_problem(value)
    if problem:
        raise ValueError(problem)


def check_dns(value: Any, keys: KeyValues) -> None:
    """``--dns=ADDR[,ADDR]``: addresses of recursive DNS servers."""
    from .dns.config import parse_servers

    parse_servers(value)


def check_dns_search(value: Any, keys: KeyValues) -> None:
    """``--dns-search=DOMAIN[,DOMAIN]``: valid domain names."""
    from .dns.config import parse_search

    parse_search(value)


def check_hosts(value: Any, keys: KeyValues) -> None:
    """``--hosts NAME=ADDR``: a valid name and an address literal."""
    from .dns.config import parse_hosts

    parse_hosts(value)


#: Same definition shape as the unix target's ``ipv4`` key (a plain string, not per device).
IPV4 = Key(
    "ipv4", "IPv4 address/prefix of the stack, e.g. 10.0.0.2/24 (unik's stack: DHCP when unset)",
    metavar="ADDR/PREFIX", check=check_ipv4,
)
IPV4_GATEWAY = Key("ipv4_gateway", "IPv4 default gateway of unik's stack, e.g. 10.0.0.1", metavar="ADDR",
                   check=check_gateway)
IPV6 = Key("ipv6", "a static IPv6 address/prefix of unik's stack beside its link-local and SLAAC ones, "
           "e.g. 2001:db8::2/64", metavar="ADDR/PREFIX", check=check_ipv6)
IPV6_GATEWAY = Key("ipv6_gateway", "IPv6 default router of unik's stack (link-local, or in --ipv6's prefix); "
                   "router advertisements give one otherwise", metavar="ADDR", check=check_ipv6_gateway)
TCP_MIN_RTO = Key(
    "tcp_min_rto", "the smallest TCP retransmission timeout of unik's stack, in seconds (default 0.2, as Linux)",
    type="float", metavar="SECONDS", check=check_min_rto,
)
#: Its default is the stack's ``DHCP_TIMEOUT_S`` (not imported: configure does not load the stack).
DHCP_TIMEOUT = Key("dhcp_timeout", "seconds unik's stack waits for a DHCP lease when --ipv4 is not given, "
                   "before it fails", type="float", default="30", metavar="SECONDS")
DNS = Key("dns", "recursive DNS servers of unik's resolver, e.g. 10.0.0.1 (default: DHCP's, else IPv6 RDNSS)",
          metavar="ADDR[,ADDR]", check=check_dns)
DNS_SEARCH = Key("dns_search", "search domains unik's resolver appends to short names (DHCP's are added)",
                 metavar="DOMAIN[,DOMAIN]", check=check_dns_search)
HOSTS = Key("hosts", "a static name for unik's resolver, answered without asking DNS (repeatable)",
            metavar="NAME=ADDR", repeatable=True, check=check_hosts)


class TcpipStackProvider(Provider):
    """unik's own TCP/IP stack over a :class:`unik.devices.Network` device."""

    PLUGIN_NAME = "tcpip.stack"
    kind = "stack"
    implementation = "unik_tcpip.stack:TcpipStack"
    #: asyncio's own network calls (start_server, open_connection...) use this stack.
    event_loop = "unik_tcpip.aio:UnikEventLoop"
    description = "unik's own TCP/IP stack (Ethernet, ARP, IPv4, IPv6, ICMP, UDP, TCP) on a network device"
    priority = 0
    needs: ClassVar[Mapping[str, Need]] = {
        "network": Need("network", "service"),
        "clock": Need("monotonic_clock"),
        "sleep": Need("sleep"),
        "random": Need("random"),
    }
    keys: ClassVar[Sequence[Key]] = (IPV4, IPV4_GATEWAY, IPV6, IPV6_GATEWAY, TCP_MIN_RTO, DHCP_TIMEOUT, DNS,
                                     DNS_SEARCH, HOSTS)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Address, gateway, minimum RTO, DHCP's patience and the resolver's keys come at run time."""
        return Configured(key_options={"ipv4": KeyRef("ipv4"), "ipv4_gateway": KeyRef("ipv4_gateway"),
                                       "ipv6": KeyRef("ipv6"), "ipv6_gateway": KeyRef("ipv6_gateway"),
                                       "tcp_min_rto": KeyRef("tcp_min_rto"), "dhcp_timeout": KeyRef("dhcp_timeout"),
                                       "dns": KeyRef("dns"), "dns_search": KeyRef("dns_search"),
                                       "hosts": KeyRef("hosts")})


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The stack provider."""
    return [TcpipStackProvider]
