"""The TPACKET_V3 ring (C) and its pure twin on a veth pair inside a namespace the test creates."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tap_support import netns_with

pytestmark = pytest.mark.root

SCRIPT = r'''
import asyncio, socket, sys
from unik_fdio import packet
print(packet.backend.__name__)
peer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
peer.bind(("vb", 0x88B5))
peer.settimeout(5)
peer_mac = open("/sys/class/net/vb/address").read().strip()

async def main():
    mac = open("/sys/class/net/va/address").read().strip()
    nic = await packet.PacketNetwork.connect("uplink", mac)
    assert nic.ifname == "va" and nic.mtu == 1500, (nic.ifname, nic.mtu)
    for i in range(100):  # more frames than one read returns, fewer than the ring holds
        peer.send(nic.mac + bytes.fromhex(peer_mac.replace(":", "")) + b"\x88\xb5" + i.to_bytes(2, "big") * 23)
    got = []
    for _ in range(50):  # bounded
        batch = await asyncio.wait_for(nic.read(limit=16), 5)
        assert 1 <= len(batch) <= 16
        got += batch
        if len(got) >= 100:
            break
    mine = [f for f in got if f[12:14] == b"\x88\xb5"]
    assert [int.from_bytes(f[14:16], "big") for f in mine] == list(range(100)), len(mine)
    await nic.write(bytes.fromhex(peer_mac.replace(":", "")) + nic.mac + b"\x88\xb5" + b"back".ljust(46, b"\0"))
    assert peer.recv(2048)[14:18] == b"back"
    assert nic.stats.rx_frames == len(got) and nic.stats.tx_frames == 1
    try:
        await nic.write(b"short")
    except Exception as exc:
        assert "shorter than an Ethernet header" in str(exc)
    else:
        raise AssertionError("a 5-byte frame was sent")
    assert nic.dropped() == 0
    await nic.disconnect()
    print("ok")

asyncio.run(main())
'''


@pytest.fixture
def veth() -> Iterator[str]:
    """A namespace with a veth pair va <-> vb, both up, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    with netns_with(f"unik-ring-{os.getpid()}", ["link", "add", "va", "type", "veth", "peer", "name", "vb"],
                    ["link", "set", "va", "up"], ["link", "set", "vb", "up"]) as name:
        yield name


@pytest.mark.parametrize("pure", ["0", "1"])
def test_ring_receives_in_order_and_sends(veth: str, pure: str) -> None:
    proc = subprocess.run(["ip", "netns", "exec", veth, sys.executable, "-c", SCRIPT],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, UNIK_PURE=pure))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    backend, result = proc.stdout.split()[0], proc.stdout.split()[1]
    assert backend == ("unik_fdio._packet_pure" if pure == "1" else "unik_fdio._packet")
    assert result == "ok"


TSO_SCRIPT = r'''
import asyncio, hashlib, socket, struct, sys
from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
from unik_fdio import packet
from unik_tcpip.stack import TcpipStack

SIZE = 4 << 20
DATA = bytes(range(256)) * (SIZE // 256)

def no_tx_checksum_offload(ifname):
    """ETHTOOL_STXCSUM off on ``ifname``: the kernel's segments then leave with whole checksums.

    A local sender's frames otherwise reach va's ring with the checksum still to be
    done (CHECKSUM_PARTIAL over a veth), which unik's stack would count as bad.
    """
    import array, fcntl
    value = array.array("I", [0x17, 0])  # struct ethtool_value {ETHTOOL_STXCSUM, 0}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, 0x8946, struct.pack("16sP", ifname.encode(), value.buffer_info()[0]))  # SIOCETHTOOL

async def main():
    no_tx_checksum_offload("vb")
    srv = socket.create_server(("10.77.0.1", 9000))
    srv.setblocking(False)
    mac = open("/sys/class/net/va/address").read().strip()
    nic = await packet.PacketNetwork.connect("uplink", mac)
    assert nic.offloads.tso and nic.offloads.tx_csum, nic.offloads
    stack = await TcpipStack.connect(nic, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(), ipv4="10.77.0.2/24")
    loop = asyncio.get_running_loop()
    accept = loop.create_task(loop.sock_accept(srv))
    reader, writer = await stack.tcp.connect("10.77.0.1", 9000)
    conn, _ = await asyncio.wait_for(accept, 10)
    writer.write(DATA)
    writer.write_eof()
    got = bytearray()
    while len(got) < SIZE:
        chunk = await asyncio.wait_for(loop.sock_recv(conn, 1 << 20), 30)
        if not chunk:
            break
        got += chunk
    assert hashlib.sha256(got).digest() == hashlib.sha256(DATA).digest(), len(got)
    # Super-frames of up to 64 KiB left behind a virtio-net header: far fewer frames than segments.
    assert nic.stats.tx_frames < SIZE // 1448 // 4, nic.stats.tx_frames
    # The VM guests' NIC takes the same receive fast path as the TAP: the kernel's ACKs
    # were predicted (tcp.predicted), none went through the awaited read (iface.slow_path).
    counts = stack.stats
    assert counts["tcp.predicted"] > counts["tcp.rx"] // 2 and not counts["iface.slow_path"], dict(counts)
    conn.close()
    writer.close()
    await stack.disconnect()
    await nic.disconnect()
    print("ok", nic.stats.tx_frames)

asyncio.run(main())
'''


def test_unik_stack_sends_super_frames_through_the_offload_socket(veth: str) -> None:
    # The kernel holds 10.77.0.1 on vb; unik's stack has va's ring (and 10.77.0.2) to itself.
    subprocess.run(["ip", "-n", veth, "addr", "add", "10.77.0.1/24", "dev", "vb"], check=True)
    proc = subprocess.run(["ip", "netns", "exec", veth, sys.executable, "-c", TSO_SCRIPT],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[0] == "ok"
