"""Every network provider of this repository passes the Network suite.

The TAP device runs it over a socket pair (what it reads and writes is a TAP's frames)
and, with root, on a real TAP; the AF_PACKET ring on a veth pair.  The ones on real
interfaces run in a network namespace the test creates (``netns_suites.py``).  hvt's
connector hands the monitor's descriptor to the same ``TapNetwork``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from unik.testing import NetworkConformance, NetworkPeer, network_namespace, tap_unavailable
from unik_fdio.tap import TapNetwork, random_mac

HERE = Path(__file__).parent


#: The virtio-net header before every frame on unik's TAPs (opened with IFF_VNET_HDR).
VNET_HDR = 12


class SocketPeer:
    """One end of a SOCK_SEQPACKET pair playing the kernel's side of a TAP: frames keep their
    boundaries and carry the virtio-net header (all zero: no offloads)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, frame: bytes) -> None:
        self.sock.send(bytes(VNET_HDR) + frame)

    def recv(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)[VNET_HDR:]
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


class TestTapNetworkOverASocketPair(NetworkConformance):
    """unik-lib-fdio's TAP device adopting a descriptor (as spt's tender and hvt's monitor hand it over)."""

    async def pair(self) -> tuple[Any, NetworkPeer]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        a.setblocking(False)
        nic = await TapNetwork.connect("net", ifname="pair0", fd=a.detach(), mtu=1500, mac=random_mac())
        return nic, SocketPeer(b)


def run_in_namespace(namespace: str, suite: str, interfaces: str) -> None:
    """Run one class of netns_suites.py by pytest inside ``namespace``; fail with its output."""
    env = {**os.environ, "UNIK_CONFORMANCE_IF": interfaces,
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), *sys.path[1:]])}
    out = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-m", "pytest", "-q", "-p", "no:xdist",
                          "-p", "no:cacheprovider", f"{HERE / 'netns_suites.py'}::{suite}"],
                         capture_output=True, text=True, env=env, timeout=240, cwd=HERE.parent.parent)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]


def ip(namespace: str, *args: str) -> None:
    subprocess.run(["ip", "-n", namespace, *args], check=True, capture_output=True)


def test_tap_network_on_a_real_tap() -> None:
    why = tap_unavailable()
    if why:
        pytest.skip(why)
    with network_namespace("unik-conf-tap") as ns:
        ip(ns, "tuntap", "add", "dev", "cftap0", "mode", "tap")
        ip(ns, "link", "set", "cftap0", "up")
        run_in_namespace(ns, "TestTapNetworkOnATap", "cftap0,cftap0")


def test_packet_network_on_a_veth_pair() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, veth)")
    with network_namespace("unik-conf-veth") as ns:
        ip(ns, "link", "add", "cfa", "type", "veth", "peer", "name", "cfb")
        ip(ns, "link", "set", "cfa", "up")
        ip(ns, "link", "set", "cfb", "up")
        run_in_namespace(ns, "TestPacketNetwork", "cfa,cfb")
