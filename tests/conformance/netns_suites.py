"""Network suites that need a network namespace: run by test_conformance_network.py inside one.

Not collected on its own (its name does not start with ``test_``): the test that
creates the namespace runs ``pytest`` on this file there, with ``UNIK_CONFORMANCE_IF``
naming the interfaces it made.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from unik.testing import NetworkConformance, NetworkPeer
from unik_fdio.packet import PacketNetwork
from unik_fdio.tap import TapNetwork

ETH_P_ALL = 0x0003


class PacketPeer:
    """An AF_PACKET socket on the other end of the device's wire."""

    def __init__(self, ifname: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def recv(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


def interfaces() -> list[str]:
    """The interfaces the runner made: ``device,peer``."""
    return os.environ["UNIK_CONFORMANCE_IF"].split(",")


class TestTapNetworkOnATap(NetworkConformance):
    """unik-lib-fdio's TAP device on a real TAP; the peer is the host's side of it."""

    async def pair(self) -> tuple[Any, NetworkPeer]:
        device, _ = interfaces()
        nic = await TapNetwork.connect("net", ifname=device)
        return nic, PacketPeer(device)


class TestPacketNetwork(NetworkConformance):
    """The VM guests' AF_PACKET ring (virtio, xen) on one end of a veth pair."""

    async def pair(self) -> tuple[Any, NetworkPeer]:
        device, peer = interfaces()
        mac = Path(f"/sys/class/net/{device}/address").read_text().strip()
        return await PacketNetwork.connect("uplink", mac), PacketPeer(peer)
