"""Addresses of both families as the transports see them (unik_tcpip.addr)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unik_tcpip.addr import family, ip_bytes, ip_text, sockaddr


@given(st.ip_addresses())
def test_text_round_trips_like_ipaddress(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    raw = ip_bytes(str(address))
    assert raw == address.packed
    # The same address (inet_ntop writes IPv4-mapped ones in RFC 5952 5's mixed notation).
    assert ipaddress.ip_address(ip_text(raw)) == address
    assert family(raw) == (socket.AF_INET if address.version == 4 else socket.AF_INET6)


def test_zone_is_ignored_and_sockaddr_has_the_family_shape() -> None:
    assert ip_bytes("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1").packed
    assert sockaddr(ip_bytes("10.0.0.1"), 80) == ("10.0.0.1", 80)
    assert sockaddr(ip_bytes("2001:db8::1"), 80) == ("2001:db8::1", 80, 0, 0)


@pytest.mark.parametrize("text", ["example.com", "1.2.3", "2001:db8::g", "::1::", "", "1.2.3.256"])
def test_bad_text_is_a_value_error_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="is not an IPv4 or IPv6 address"):
        ip_bytes(text)
