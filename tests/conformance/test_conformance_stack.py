"""Every stack of this repository passes the Stack suite: the host's sockets, and unik's TCP/IP.

unik's stack runs twice, on a wire of two unik-lib-fdio TAP devices joined back to back
by a SOCK_SEQPACKET pair (each reads the frames the other writes, virtio-net headers
included): no root needed, and the devices are the real ones.
"""

from __future__ import annotations

import socket
from typing import Any

from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
from unik.testing import StackConformance, StackPair
from unik_fdio.tap import TapNetwork, random_mac
from unik_tcpip.stack import TcpipStack
from unik_unix.socket_stack import SocketStack


class TestSocketStack(StackConformance):
    """The unix target's stack over the host's sockets, reaching itself on the loopback."""

    port = 18_118

    async def pair(self) -> StackPair:
        stack = await SocketStack.connect("127.0.0.1/8")
        return StackPair(stack, stack, "127.0.0.1")


async def tcpip_stack(fd: int, ipv4: str) -> Any:
    nic = await TapNetwork.connect(f"net{fd}", ifname=f"wire{fd}", fd=fd, mtu=1500, mac=random_mac())
    return await TcpipStack.connect(nic, await PosixMonotonicClock.connect(), await PosixSleep.connect(),
                                    await GetrandomRandom.connect(), ipv4=ipv4)


class TestTcpipStack(StackConformance):
    """unik-lib-tcpip's stack, serving another of its kind across a two-TAP wire."""

    async def pair(self) -> StackPair:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        a.setblocking(False)
        b.setblocking(False)
        server = await tcpip_stack(a.detach(), "10.77.0.1/24")
        client = await tcpip_stack(b.detach(), "10.77.0.2/24")
        return StackPair(server, client, "10.77.0.1")
