"""Answer ARP requests (RFC 826) for one IPv4 address, straight on a Network device.

The smallest application that proves a unik Network works end to end: no IP stack,
just Ethernet frames in and out.  It exits 0 after answering ``count`` requests, or
1 if they do not come within :data:`TIME_LIMIT` seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct

from unik.devices import Console, Network

#: Give up (exit 1) when the requests have not arrived after this many seconds.
TIME_LIMIT = 60.0

ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV4 = 0x0800
#: hardware type Ethernet, protocol IPv4, address lengths 6 and 4 (RFC 826).
ARP_ETHER_IPV4 = struct.pack("!HHBB", 1, ETHERTYPE_IPV4, 6, 4)
OP_REQUEST, OP_REPLY = 1, 2


def is_request_for(frame: bytes, address: bytes) -> bool:
    """Whether ``frame`` is an Ethernet ARP request asking for the IPv4 ``address``."""
    return (
        len(frame) >= 42
        and struct.unpack_from("!H", frame, 12)[0] == ETHERTYPE_ARP
        and frame[14:20] == ARP_ETHER_IPV4
        and struct.unpack_from("!H", frame, 20)[0] == OP_REQUEST
        and frame[38:42] == address
    )


def reply_to(request: bytes, mac: bytes) -> bytes:
    """The ARP reply to ``request``: ``mac`` has the address that was asked for."""
    sender_mac, sender_ip, target_ip = request[22:28], request[28:32], request[38:42]
    return (
        sender_mac + mac + struct.pack("!H", ETHERTYPE_ARP)
        + ARP_ETHER_IPV4 + struct.pack("!H", OP_REPLY)
        + mac + target_ip + sender_mac + sender_ip
    )


async def start(net: Network, console: Console, *, address: str = "10.0.0.2", count: int = 1) -> int:
    """Answer ``count`` ARP requests for ``address`` from ``net.mac``; 0 on success."""
    wanted = ipaddress.IPv4Address(address).packed
    console.log(f"answering ARP for {address} as {net.mac.hex(':')} on {net.name}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIME_LIMIT
    answered = 0
    while answered < count:
        try:
            frames = await asyncio.wait_for(net.read(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            console.log(f"gave up after {TIME_LIMIT:.0f} s: answered {answered} of {count} requests")
            return 1
        for frame in frames:
            if answered < count and is_request_for(frame, wanted):
                await net.write(reply_to(frame, net.mac))
                answered += 1
                asker = ipaddress.IPv4Address(frame[28:32])
                console.log(f"told {asker} ({frame[22:28].hex(':')}) that {address} is {net.mac.hex(':')}")
    return 0
