"""The DHCPv4 client: message codec, and a whole lease life in virtual time."""

from __future__ import annotations

import asyncio

import pytest
from tcpip_support import LoopSleep, SeededRandom, VirtualClock, Wire, mac, make_stack, run, settle
from unik_tcpip.dhcp import ACK, DISCOVER, NAK, OFFER, REQUEST, DhcpMessage, DhcpState
from unik_tcpip.errors import Malformed
from unik_tcpip.iface import ANY, ip_bytes
from unik_tcpip.stack import TcpipStack


def test_message_round_trip() -> None:
    msg = DhcpMessage(1, 0x1234, mac(7), options={53: bytes([DISCOVER]), 51: (60).to_bytes(4, "big"),
                                                   3: ip_bytes("10.0.0.1") + ip_bytes("10.0.0.2")})
    raw = msg.to_bytes()
    assert len(raw) == 300
    back = DhcpMessage.parse(raw)
    assert (back.op, back.xid, back.chaddr, back.msg_type) == (1, 0x1234, mac(7), DISCOVER)
    assert back.int_option(51) == 60 and back.addr_option(3) == ip_bytes("10.0.0.1")


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda b: b[:200], "dhcp.truncated"),
    (lambda b: b[:236] + b"\x00\x00\x00\x00" + b[240:], "dhcp.bad_cookie"),
    (lambda b: b[:1] + b"\x06" + b[2:], "dhcp.unsupported_hardware"),
    (lambda b: b[:240] + bytes([51, 200, 0, 0]), "dhcp.bad_option"),
])
def test_malformed_messages(mutate: object, reason: str) -> None:
    raw = DhcpMessage(2, 1, mac(1), options={53: bytes([OFFER])}).to_bytes()
    with pytest.raises(Malformed) as info:
        DhcpMessage.parse(mutate(raw))  # type: ignore[operator]
    assert info.value.reason == reason


class FakeServer:
    """A minimal DHCP server on a unik stack: one address, a short lease."""

    def __init__(self, stack: TcpipStack, lease: int = 60) -> None:
        self.stack = stack
        self.lease = lease
        self.answering = True
        self.nak_next = False
        self.seen: list[tuple[int, bytes]] = []  # (message type, ciaddr)

    async def serve(self) -> None:
        endpoint = await self.stack.udp.bind(67)
        while True:
            data, _source = await endpoint.recvfrom()
            msg = DhcpMessage.parse(data)
            self.seen.append((msg.msg_type or 0, msg.ciaddr))
            if not self.answering:
                continue
            kind = {DISCOVER: OFFER, REQUEST: ACK}.get(msg.msg_type or 0)
            if kind is None:
                continue
            if kind == ACK and self.nak_next:
                kind, self.nak_next = NAK, False
            reply = DhcpMessage(2, msg.xid, msg.chaddr, yiaddr=ip_bytes("10.0.0.50"), options={
                53: bytes([kind]), 54: ip_bytes("10.0.0.1"), 51: self.lease.to_bytes(4, "big"),
                1: ip_bytes("255.255.255.0"), 3: ip_bytes("10.0.0.1"), 6: ip_bytes("10.0.0.53"),
            })
            # Unicast to a renewing client, broadcast otherwise (RFC 2131 4.1).
            dst = msg.ciaddr if msg.ciaddr != ANY else b"\xff\xff\xff\xff"
            await endpoint.sendto(reply.to_bytes(), (".".join(map(str, dst)), 68))


def test_lease_renew_rebind_expire_and_reacquire() -> None:
    async def main() -> None:
        wire = Wire()
        server_stack = await make_stack(wire, 1, "10.0.0.1/24")
        server = FakeServer(server_stack)
        serving = asyncio.ensure_future(server.serve())
        await settle(0.01)
        client = await TcpipStack.connect(wire.port(mac(2), name="client"), VirtualClock(), LoopSleep(),
                                          SeededRandom(2))
        assert client.dhcp is not None
        assert client.ipv4.address == "10.0.0.50" and client.ipv4.prefix == 24
        assert client.ipv4.gateway == "10.0.0.1" and client.dhcp.lease is not None
        assert client.dhcp.lease.dns == ("10.0.0.53",)
        assert await server_stack.ping("10.0.0.50") > 0
        # T1 = 30 s: a unicast renewal from the bound address.
        await settle(31)
        assert client.dhcp.renewals == 1 and client.dhcp.state == DhcpState.BOUND
        assert server.seen[-1] == (REQUEST, ip_bytes("10.0.0.50")), server.seen
        # The server goes quiet: RENEWING, then REBINDING at T2, then expiry drops the address.
        server.answering = False
        await settle(31 + 60 * 7 // 8 - 30 + 1)
        assert client.dhcp.state == DhcpState.REBINDING  # type: ignore[comparison-overlap]
        await settle(60)
        assert client.stats["dhcp.lease_lost"] == 1 and client.iface.address == ANY
        # It comes back: a new lease from INIT.
        server.answering = True
        await asyncio.wait_for(client.dhcp.bound.wait(), 200)
        assert client.ipv4.address == "10.0.0.50" and client.stats["dhcp.ack"] == 3
        # A NAK on renewal sends the client back to INIT, where it gets a lease again.
        server.nak_next = True
        await settle(31)
        assert client.stats["dhcp.nak"] == 1
        await asyncio.wait_for(client.dhcp.bound.wait(), 200)
        assert client.ipv4.address == "10.0.0.50"
        await client.disconnect()
        serving.cancel()
    run(main())


def test_no_server_times_out(capsys: pytest.CaptureFixture[str]) -> None:
    from unik.errors import DeviceUnavailable

    async def main() -> None:
        wire = Wire()
        with pytest.raises(DeviceUnavailable, match=r"no DHCP lease within 30 s: .* \(--dhcp-timeout SECONDS\)"):
            await TcpipStack.connect(wire.port(mac(2)), VirtualClock(), LoopSleep(), SeededRandom(1),
                                     dhcp_timeout=30)
        discovers = [f for _, f in wire.log if len(f) > 42 and f[14 + 9] == 17]
        assert 2 <= len(discovers) <= 4  # 4, 8, 16 s back-off (RFC 2131 4.1)
    run(main())
    # said once, after a moment, that it waits (a VM would otherwise sit silent)
    assert capsys.readouterr().err.count(": waiting for a DHCP lease on ") == 1
