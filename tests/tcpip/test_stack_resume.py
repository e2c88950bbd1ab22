"""A stack restored from a VM snapshot (lifecycle RESUMED): the NIC's new MAC, no neighbour kept, new lease, secrets."""

from __future__ import annotations

import asyncio

from tcpip_support import LoopSleep, SeededRandom, VirtualClock, Wire, mac, make_stack, run, settle
from test_dhcp import FakeServer
from unik import lifecycle
from unik_tcpip.dhcp import DISCOVER
from unik_tcpip.ipv6 import wire as wire6
from unik_tcpip.stack import TcpipStack


def test_resumed_takes_the_new_mac_forgets_neighbours_and_takes_a_new_lease() -> None:
    lifecycle.reset()

    async def main() -> None:
        wire = Wire()
        server_stack = await make_stack(wire, 1, "10.0.0.1/24")
        lifecycle.unsubscribe(lifecycle.RESUMED, server_stack._resumed)  # the peer is not restored
        server = FakeServer(server_stack)
        serving = asyncio.ensure_future(server.serve())
        await settle(0.01)
        nic = wire.port(mac(2), name="client")
        client = await TcpipStack.connect(nic, VirtualClock(), LoopSleep(), SeededRandom(2))
        assert client.ipv4.address == "10.0.0.50"
        assert await server_stack.ping("10.0.0.50") > 0  # both sides learnt each other
        assert client.iface.arp.entries and server_stack.iface.arp.entries[bytes([10, 0, 0, 50])][0] == mac(2)
        secret = client.tcp._secret
        discovers = [s for s in server.seen if s[0] == DISCOVER]

        nic.mac = mac(9)  # the snapshot agent gave the guest's interface this instance's MAC
        await lifecycle.announce_and_wait(lifecycle.RESUMED)

        assert client.iface.mac == mac(9) and client.ipv6.mac == mac(9)
        assert client.stats["stack.resumed"] == 1 and client.stats["iface.renewed"] == 1
        assert [s for s in server.seen if s[0] == DISCOVER] != discovers  # a new client: from INIT
        assert client.ipv4.address == "10.0.0.50" and client.dhcp is not None and client.dhcp.lease is not None
        assert client.tcp._secret != secret  # another instance's ISNs say nothing of this one's
        assert wire6.link_local(mac(9)) in {a.address for a in client.ipv6.addresses}
        assert wire6.link_local(mac(2)) not in {a.address for a in client.ipv6.addresses}
        # The server reaches the client at its new MAC.
        assert await server_stack.ping("10.0.0.50") > 0
        assert server_stack.iface.arp.entries[bytes([10, 0, 0, 50])][0] == mac(9)
        await client.disconnect()
        serving.cancel()
        await server_stack.disconnect()

    try:
        run(main())
    finally:
        lifecycle.reset()


def test_a_static_address_stays_and_is_announced_from_the_new_mac() -> None:
    lifecycle.reset()

    async def main() -> None:
        wire = Wire()
        a = await make_stack(wire, 1, "10.0.0.1/24")
        b = await make_stack(wire, 2, "10.0.0.2/24")
        lifecycle.unsubscribe(lifecycle.RESUMED, a._resumed)  # the peer is not restored
        assert await a.ping("10.0.0.2") > 0
        b.network.mac = mac(7)  # type: ignore[misc]
        await lifecycle.announce_and_wait(lifecycle.RESUMED)
        await settle(0.01)
        assert b.ipv4.address == "10.0.0.2" and not b.iface.arp.entries  # its cache was dropped
        assert a.iface.arp.entries[bytes([10, 0, 0, 2])][0] == mac(7)  # the gratuitous ARP
        assert await a.ping("10.0.0.2") > 0
        await a.disconnect()
        await b.disconnect()

    try:
        run(main())
    finally:
        lifecycle.reset()
