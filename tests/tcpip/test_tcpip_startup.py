"""Start-up cost: what importing the stack loads; the plain classes that replaced dataclasses."""

from __future__ import annotations

import inspect
import ipaddress
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tcpip_support import Wire, make_stack, run
from unik.devices import IPv4Config
from unik.errors import BadKey
from unik_tcpip import checksum, fastpath
from unik_tcpip.iface import ip_bytes, ip_text, parse_quad
from unik_tcpip.stack import parse_ipv4
from unik_tcpip.tcp import TcpConfig, TcpStats

# What the stack's import adds to what its dependencies (asyncio, unik's core) load anyway.
_NEW_MODULES = """
import sys, json
import asyncio, typing, unik.devices, unik.errors, unik.posix
before = set(sys.modules)
import unik_tcpip.stack
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_stack_import_does_not_load_dhcp() -> None:
    out = subprocess.run([sys.executable, "-c", _NEW_MODULES], capture_output=True, text=True, check=True).stdout
    new = set(json.loads(out))
    assert {"unik_tcpip.stack", "unik_tcpip.tcp", "unik_tcpip.iface"} <= new
    assert "unik_tcpip.dhcp" not in new
    assert not new & {"hashlib", "dataclasses", "ipaddress", "unik_tcpip.wire._tcpflags"}, new


def test_pure_twins_load_only_when_used() -> None:
    if checksum.implementation() != "c" or fastpath.implementation() != "c":
        pytest.skip("the C modules are not in use here")
    out = subprocess.run([sys.executable, "-c", _NEW_MODULES], capture_output=True, text=True, check=True).stdout
    new = set(json.loads(out))
    assert {"unik_tcpip._checksum", "unik_tcpip._fastpath"} <= new
    assert not new & {"unik_tcpip._checksum_py", "unik_tcpip._fastpath_py"}, new


@pytest.mark.parametrize("cls", [TcpConfig, TcpStats])
def test_record_classes_behave_like_the_dataclasses_they_replace(cls: type[TcpConfig | TcpStats]) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == list(cls._fields)
    default = cls()
    # Positional arguments in field order, keywords, and the defaults.
    assert cls(*[p.default for p in params]) == default
    assert cls(**{p.name: p.default for p in params}) == default
    inner = ", ".join(f"{p.name}={p.default!r}" for p in params)
    assert repr(default) == f"{cls.__name__}({inner})"
    first: dict[str, Any] = {params[0].name: 12345}
    changed = cls(**first)
    assert changed != default and getattr(changed, params[0].name) == 12345
    assert default.__eq__(object()) is NotImplemented
    with pytest.raises(TypeError):
        hash(default)
    with pytest.raises(AttributeError):
        default.no_such_field = 1  # type: ignore[union-attr]
    setattr(default, params[-1].name, 7)
    assert getattr(default, params[-1].name) == 7


def test_dhcp_records_behave_like_the_dataclasses_they_replace() -> None:
    from unik_tcpip.dhcp import DhcpMessage, Lease
    from unik_tcpip.iface import ANY

    for cls in (DhcpMessage, Lease):
        assert [p.name for p in inspect.signature(cls).parameters.values()] == list(cls._fields)
    mac = b"\x02" * 6
    msg = DhcpMessage(1, 7, mac, flags=0x8000)
    assert msg == DhcpMessage(1, 7, b"\x02" * 6, ANY, ANY, ANY, ANY, 0, 0x8000, None)
    assert msg != DhcpMessage(1, 8, b"\x02" * 6, flags=0x8000)
    assert repr(msg) == (f"DhcpMessage(op=1, xid=7, chaddr={mac!r}, ciaddr={ANY!r}, yiaddr={ANY!r}, "
                         f"siaddr={ANY!r}, giaddr={ANY!r}, secs=0, flags=32768, options=None)")
    lease = Lease(IPv4Config("10.0.0.5", 24, None), b"\n\0\0\1", 60, 30, 52, ("10.0.0.53",), 5)
    assert lease == Lease(IPv4Config("10.0.0.5", 24, None), b"\n\0\0\1", 60, 30, 52, ("10.0.0.53",), 5)
    assert repr(lease).startswith("Lease(config=IPv4Config(address='10.0.0.5', prefix=24, gateway=None), server=")
    with pytest.raises(TypeError):
        hash(lease)


def test_tcp_config_defaults() -> None:
    cfg = TcpConfig()
    assert (cfg.rcv_buf, cfg.initial_rto_ns, cfg.delayed_ack_ns, cfg.keepalive_idle_ns) == (
        1 << 20, 10**9, 40 * 10**6, 2 * 3600 * 10**9)
    assert cfg.nagle and cfg.syn_cookies and not cfg.keepalive and cfg.congestion_control == "newreno"


# -- addresses without ipaddress: each fast path must agree with ipaddress exactly ----------

_OCTET = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["", "0", "00", "01", "007", "1_0", " 1", "+1",
                                                                  "\u0661", "\u00b2", "0x1", "-1", "1000"]))
_QUAD = st.one_of(
    st.lists(_OCTET, min_size=4, max_size=4).map(".".join),
    st.lists(_OCTET, min_size=1, max_size=6).map(".".join),
    st.text(alphabet="0123456789./ x", max_size=20),
    st.ip_addresses(v=4).map(str),
)


def _ipaddress_or_error(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the type and message are compared
        return (type(exc), str(exc))


@given(_QUAD)
@settings(max_examples=500)
@example("10.0.0.1")
@example("01.2.3.4")
@example("1.2.3.256")
@example("1.2.3.\u0661")
@example("1.2.3.4/32")
def test_ip_bytes_and_parse_quad_agree_with_ipaddress(text: str) -> None:
    want = _ipaddress_or_error(lambda: ipaddress.IPv4Address(text).packed)
    assert _ipaddress_or_error(lambda: ip_bytes(text)) == want
    value = parse_quad(text)
    if value is not None:
        assert value.to_bytes(4, "big") == want


@given(st.one_of(st.binary(min_size=0, max_size=6), st.integers(-1, 2**33), st.just(bytearray(4))))
def test_ip_text_agrees_with_ipaddress(raw: object) -> None:
    want = _ipaddress_or_error(lambda: str(ipaddress.IPv4Address(raw)))  # type: ignore[arg-type]
    assert _ipaddress_or_error(lambda: ip_text(raw)) == want  # type: ignore[arg-type]


def _parse_ipv4_with_ipaddress(ipv4: str, gateway: str | None) -> IPv4Config:
    """parse_ipv4's rules, everything through ipaddress."""
    try:
        iface = ipaddress.IPv4Interface(ipv4)
    except ValueError:
        raise BadKey(f"--ipv4: {ipv4!r} is not an IPv4 address/prefix such as 10.0.0.2/24") from None
    if "/" not in ipv4:
        raise BadKey(f"--ipv4: {ipv4!r} needs a prefix length, e.g. {ipv4}/24")
    net = iface.network
    special = (net.network_address, net.broadcast_address) if net.prefixlen <= 30 else ()
    if iface.ip in special:
        what = "network" if iface.ip == net.network_address else "broadcast"
        raise BadKey(f"--ipv4: {iface.ip} is the {what} address of {net}, not a host's: use one of "
                     f"{net.network_address + 1}-{net.broadcast_address - 1}")
    gw: str | None = None
    if gateway:
        try:
            gw = str(ipaddress.IPv4Address(gateway))
        except ValueError:
            raise BadKey(f"--ipv4-gateway: {gateway!r} is not an IPv4 address") from None
        if ipaddress.IPv4Address(gw) not in net:
            raise BadKey(f"--ipv4-gateway: {gw} is not in {net}, the network of --ipv4 {ipv4}: "
                         f"a gateway must be reachable directly")
        if ipaddress.IPv4Address(gw) in special:
            raise BadKey(f"--ipv4-gateway: {gw} is the network or broadcast address of {net}, not a host's")
    return IPv4Config(str(iface.ip), net.prefixlen, gw)


_PREFIX = st.one_of(st.integers(0, 40).map(str), st.sampled_from(["", "024", "0024", "00000000024", "x",
                                                                  "255.255.255.0", "0.0.0.255", "24/1"]))


@given(_QUAD, st.one_of(st.none(), _PREFIX), st.one_of(st.none(), st.just(""), _QUAD))
@settings(max_examples=500)
@example("10.0.9.2", "24", None)
@example("10.0.9.2", "024", "10.0.9.1")
@example("10.0.9.02", "24", None)
@example("10.0.9.2", "24", "10.0.09.1")
@example("10.0.9.2", "33", None)
@example("10.0.9.2", "0" * 5000, None)
@example("10.0.9.0", "24", None)
@example("10.0.9.3", "30", "10.0.9.0")
def test_parse_ipv4_agrees_with_ipaddress(address: str, prefix: str | None, gateway: str | None) -> None:
    ipv4 = address if prefix is None else f"{address}/{prefix}"
    want = _ipaddress_or_error(lambda: _parse_ipv4_with_ipaddress(ipv4, gateway))
    assert _ipaddress_or_error(lambda: parse_ipv4(ipv4, gateway)) == want


@pytest.mark.parametrize(("ipv4", "gateway"), [
    ("10.0.9.2/24", None), ("10.0.9.2/24", "10.0.9.1"), ("192.168.1.77/32", "192.168.1.77"), ("0.0.0.0/0", "8.8.8.8"),
    ("10.1.2.3/31", "10.1.2.2"), ("10.0.9.2/24", "10.0.8.1"), ("10.0.9.2/255.255.255.0", "10.0.9.1"),
    ("10.0.9.0/24", None), ("10.0.9.255/24", None), ("10.0.9.2/24", "10.0.9.255"), ("10.0.9.2/30", "10.0.9.0"),
])
def test_parse_ipv4_and_configure_known_cases(ipv4: str, gateway: str | None) -> None:
    want = _ipaddress_or_error(lambda: _parse_ipv4_with_ipaddress(ipv4, gateway))
    got = _ipaddress_or_error(lambda: parse_ipv4(ipv4, gateway))
    assert got == want
    if isinstance(got, IPv4Config):
        wire = Wire()

        async def main() -> None:
            stack = await make_stack(wire, 1, ipv4, gateway)
            network = ipaddress.IPv4Network(f"{got.address}/{got.prefix}", strict=False)
            iface = stack.iface
            assert (iface._mask, iface._net) == (int(network.netmask), int(network.network_address))
            assert iface.broadcast == (network.broadcast_address.packed if got.prefix < 31 else b"\xff" * 4)
            assert stack.ipv4 == got
            await stack.disconnect()

        run(main())


_SEAL = """
import sys, json
import unik_tcpip.stack
from unik import lifecycle
lazy = ("unik_tcpip.dhcp", "ipaddress", "unik_tcpip.wire._tcpflags")
before = [m in sys.modules for m in lazy]
lifecycle.announce(lifecycle.BEFORE_SEAL)
print(json.dumps([before, [m in sys.modules for m in lazy]]))
"""


def test_sealing_the_process_imports_what_loads_on_first_use() -> None:
    # spt announces the runtime's BEFORE_SEAL before its filter goes on,
    # after which nothing can be imported: DHCP and the address fallbacks must be in by then.
    out = subprocess.run([sys.executable, "-c", _SEAL], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [[False, False, False], [True, True, True]]


def test_tcp_flags_are_served_on_first_use() -> None:
    from unik_tcpip import wire
    from unik_tcpip.wire import tcp as wire_tcp
    from unik_tcpip.wire._tcpflags import TcpFlags

    assert wire.TcpFlags is TcpFlags and wire_tcp.TcpFlags is TcpFlags
    assert repr(TcpFlags(0x12)) == "<TcpFlags.SYN|ACK: 18>"
    assert "TcpFlags" in wire.__all__
    with pytest.raises(AttributeError):
        wire.NoSuchThing  # noqa: B018
    with pytest.raises(AttributeError):
        wire_tcp.NoSuchThing  # noqa: B018
