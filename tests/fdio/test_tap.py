"""TapNetwork and its data path, against both the C module and the pure twin.

The first half needs nothing special: the data-path functions and the device's
bookkeeping are exercised over an AF_UNIX SOCK_SEQPACKET socket pair, which keeps
frame boundaries like a TAP does.  The second half needs root and /dev/net/tun: it
opens real TAPs, moves them into a network namespace created for the test, and talks
ARP, ICMP and UDP with the kernel there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import importlib
import ipaddress
import os
import random
import re
import secrets
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

import pytest
from fdio_support import backend_fixture, run
from hypothesis import given, settings
from hypothesis import strategies as st
from unik import accel
from unik.devices import Network, NetworkStats, Offloads, TxOffload
from unik.errors import DeviceClosed, DeviceError, DeviceUnavailable
from unik.testing import network_namespace, tap_unavailable
from unik_fdio import tap as tap_mod
from unik_fdio.tap import TapNetwork, random_mac

VNET = 12
TIMEOUT = 5.0


#: The data-path module under test, also the one TapNetwork.connect uses.
backend = backend_fixture(tap_mod, "unik_fdio._tap", "unik_fdio._tap_pure")


# --- an independent implementation of the checksums, for checking ---------------------


def reference_checksum(data: bytes) -> int:
    """RFC 1071, the textbook way: add 16-bit words with end-around carry, complement."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def udp_checksum_ok(frame: bytes) -> bool:
    """Whether the IPv4/UDP frame's UDP checksum verifies (RFC 768)."""
    ihl = (frame[14] & 0xF) * 4
    ip = frame[14:14 + ihl]
    length = struct.unpack_from("!H", frame, 14 + ihl + 4)[0]
    udp = frame[14 + ihl:14 + ihl + length]
    return reference_checksum(pseudo_header(ip[12:16], ip[16:20], 17, length) + udp) == 0


def make_udp_frame(
    src_mac: bytes, dst_mac: bytes, src: str, dst: str, sport: int, dport: int, payload: bytes,
    partial: bool = False,
) -> bytes:
    """An Ethernet/IPv4/UDP frame; ``partial``: checksum field holds the pseudo-header sum only."""
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    length = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0x4000, 64, 17, 0, s, d)
    ip = ip[:10] + struct.pack("!H", reference_checksum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
    if partial:  # as a host stack leaves it for the NIC: folded, not complemented
        csum = ~reference_checksum(pseudo_header(s, d, 17, length)) & 0xFFFF
    else:
        csum = reference_checksum(pseudo_header(s, d, 17, length) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


def vnet_header(flags: int = 0, gso: int = 0, hdr_len: int = 0, gso_size: int = 0,
                start: int = 0, offset: int = 0) -> bytes:
    return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, start, offset, 0)


# --- the modules --------------------------------------------------------------------------


def test_c_module_is_loaded_without_unik_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    pure_run = accel.pure()
    monkeypatch.delenv("UNIK_PURE", raising=False)
    module = accel.load("unik_fdio._tap", "unik_fdio._tap_pure")
    assert module.__name__ == "unik_fdio._tap"
    assert module.__file__ is not None and module.__file__.endswith(".so")
    if not pure_run:
        assert tap_mod.backend is module


def test_twins_agree_on_names_and_constants() -> None:
    c = importlib.import_module("unik_fdio._tap")
    pure = importlib.import_module("unik_fdio._tap_pure")
    public = {n for n in dir(c) if not n.startswith("_")}
    assert {"read_frames", "write_frame", "complete_checksum", "internet_checksum"} <= public
    assert public <= set(dir(pure))
    constants = {n for n in public if n.isupper()}
    assert len(constants) > 20
    # On this (generic-ioctl) architecture the twin's numbers equal the headers'.
    assert {n: getattr(c, n) for n in constants} == {n: getattr(pure, n) for n in constants}
    assert c.TUNSETIFF == 0x400454CA and c.VNET_HDR_LEN == 12


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_internet_checksum_matches_reference(data: bytes) -> None:
    c = importlib.import_module("unik_fdio._tap")
    pure = importlib.import_module("unik_fdio._tap_pure")
    expected = reference_checksum(data)
    assert c.internet_checksum(data) == expected
    assert pure.internet_checksum(bytearray(data)) == expected


def test_internet_checksum_edge_cases(backend: ModuleType) -> None:
    assert backend.internet_checksum(b"") == 0xFFFF
    assert backend.internet_checksum(b"\0" * 7) == 0xFFFF
    assert backend.internet_checksum(b"\xff\xff") == 0  # sum is negative zero
    assert backend.internet_checksum(b"\xff\xff\xff\xff\x01") == reference_checksum(b"\xff\xff\xff\xff\x01")
    # RFC 1071 section 3's example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    assert backend.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == ~0xDDF2 & 0xFFFF


def test_complete_checksum(backend: ModuleType) -> None:
    mac_a, mac_b = random_mac(), random_mac()
    for size in (0, 1, 2, 3, 17, 1400, 1401):
        payload = os.urandom(size)
        frame = bytearray(make_udp_frame(mac_a, mac_b, "10.9.8.7", "10.9.8.1", 4000, 53, payload, partial=True))
        backend.complete_checksum(frame, 34, 6)
        assert udp_checksum_ok(bytes(frame))
        assert bytes(frame) == make_udp_frame(mac_a, mac_b, "10.9.8.7", "10.9.8.1", 4000, 53, payload)


def test_complete_checksum_zero_becomes_ffff(backend: ModuleType) -> None:
    """A computed 0 is stored as 0xffff (CSUM_MANGLED_0): 0 means "no checksum" in UDP."""
    # data whose sum is 0xffff: the complement is 0.
    frame = bytearray(b"\x12\x34" + b"\x00\x00" + struct.pack("!H", 0xFFFF - 0x1234))
    backend.complete_checksum(frame, 0, 2)
    assert frame[2:4] == b"\xff\xff"
    assert reference_checksum(bytes(frame)) == 0


def test_complete_checksum_bad_arguments(backend: ModuleType) -> None:
    frame = bytearray(40)
    for start, offset in ((39, 0), (40, 0), (0, 39), (41, 0), (30, 9), (-1, 0), (0, -2)):
        with pytest.raises(ValueError, match="outside the frame"):
            backend.complete_checksum(frame, start, offset)
    assert frame == bytearray(40)
    backend.complete_checksum(frame, 38, 0)  # the last two bytes: fits
    with pytest.raises(TypeError):
        backend.complete_checksum(bytes(40), 0, 0)


# --- the data path over a SOCK_SEQPACKET pair (frames keep their boundaries) -------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


def test_read_frames_batches_and_strips(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    frames = [bytes([i]) * (60 + i) for i in range(10)]
    for f in frames:
        peer.send(vnet_header() + f)
    got, malformed, completed = backend.read_frames(ours.fileno(), 64, 65548)
    assert (got, malformed, completed) == (frames, 0, 0)
    assert backend.read_frames(ours.fileno(), 64, 65548) == ([], 0, 0)  # EAGAIN: empty


def test_read_frames_limit(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    for i in range(5):
        peer.send(vnet_header() + bytes([i]) * 60)
    first, _, _ = backend.read_frames(ours.fileno(), 2, 65548)
    rest, _, _ = backend.read_frames(ours.fileno(), 64, 65548)
    assert [f[0] for f in first] == [0, 1] and [f[0] for f in rest] == [2, 3, 4]
    with pytest.raises(ValueError):
        backend.read_frames(ours.fileno(), 0, 65548)
    with pytest.raises(ValueError):
        backend.read_frames(ours.fileno(), 1, 20)


def test_read_frames_completes_and_counts(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    udp = make_udp_frame(random_mac(), random_mac(), "10.1.2.3", "10.1.2.4", 1, 2, b"hello", partial=True)
    peer.send(vnet_header(flags=1, start=34, offset=6) + udp)       # completed
    peer.send(vnet_header() + b"x" * 13)                              # runt: malformed
    peer.send(b"\0" * 5)                                              # shorter than the header
    peer.send(vnet_header(flags=1, start=60, offset=6) + udp[:50])   # offsets outside: malformed
    peer.send(vnet_header(flags=2) + udp)                              # DATA_VALID: as is
    got, malformed, completed = backend.read_frames(ours.fileno(), 64, 65548)
    assert (malformed, completed) == (3, 1)
    assert len(got) == 2 and udp_checksum_ok(got[0]) and got[1] == udp
    assert not udp_checksum_ok(udp)


def test_read_frames_errors(backend: ModuleType) -> None:
    r, w = os.pipe()
    os.close(w)
    os.close(r)
    with pytest.raises(OSError) as exc:
        backend.read_frames(r, 8, 65548)
    assert exc.value.errno == errno.EBADF


def test_write_frame(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    hdr = vnet_header(flags=1, start=34, offset=6)
    assert backend.write_frame(ours.fileno(), hdr, b"f" * 60) is True
    assert backend.write_frame(ours.fileno(), bytearray(12), memoryview(b"g" * 61)) is True
    assert peer.recv(100) == hdr + b"f" * 60
    assert peer.recv(100) == bytes(12) + b"g" * 61
    sent = 0
    while backend.write_frame(ours.fileno(), hdr, b"h" * 1500):  # fill the queue: EAGAIN
        sent += 1
        assert sent < 100_000
    assert sent > 0
    with pytest.raises(OSError) as exc:
        backend.write_frame(-1, hdr, b"x" * 60)
    assert exc.value.errno == errno.EBADF


# --- TapNetwork's bookkeeping, over the same socket pair ---------------------------------


def fake_tap(fd: int, io: ModuleType, offloads: Offloads = Offloads()) -> TapNetwork:  # noqa: B008
    return TapNetwork("net", "fake0", os.dup(fd), random_mac(), 1500, offloads, io)


def test_random_mac() -> None:
    macs = {random_mac() for _ in range(50)}
    assert len(macs) == 50
    for mac in macs:
        assert len(mac) == 6 and mac[0] & 0x02 and not mac[0] & 0x01


def test_read_waits_then_drains(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    dev = fake_tap(ours.fileno(), backend)
    assert isinstance(dev, Network)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: [peer.send(vnet_header() + bytes([i]) * 64) for i in range(3)])
        frames = await asyncio.wait_for(dev.read(), TIMEOUT)
        assert [f[0] for f in frames] == [0, 1, 2]
        # two readers share one registration; one frame wakes both, one gets it
        readers = [asyncio.ensure_future(dev.read(limit=1)) for _ in range(2)]
        await asyncio.sleep(0.01)
        peer.send(vnet_header() + b"a" * 64)
        peer.send(vnet_header() + b"b" * 64)
        got = await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT)
        assert sorted(f[0][:1] for f in got) == [b"a", b"b"]
        # a cancelled reader leaves the device usable
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(dev.read(), 0.05)
        peer.send(vnet_header() + b"c" * 64)
        assert await asyncio.wait_for(dev.read(), TIMEOUT) == [b"c" * 64]
        await dev.disconnect()

    run(go())
    assert dev.stats == NetworkStats(rx_frames=6, rx_bytes=6 * 64)


def test_disconnect_wakes_readers(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    dev = fake_tap(ours.fileno(), backend)

    async def go() -> None:
        reader = asyncio.ensure_future(dev.read())
        await asyncio.sleep(0.01)
        await dev.disconnect()
        with pytest.raises(DeviceClosed, match="'net' is disconnected"):
            await asyncio.wait_for(reader, TIMEOUT)
        await dev.disconnect()  # idempotent
        with pytest.raises(DeviceClosed):
            await dev.write(b"x" * 60)
        with pytest.raises(DeviceClosed):
            dev.read_nowait()

    run(go())
    assert dev.fileno() == -1


def test_stats_are_exact(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    dev = fake_tap(ours.fileno(), backend)
    peer.send(vnet_header() + b"r" * 100)
    peer.send(b"runt")
    assert dev.read_nowait() == [b"r" * 100]
    assert dev.read_nowait() == []
    sent = 0
    while dev.send(b"w" * 1000):
        sent += 1
        assert sent < 100_000
    for _ in range(3):
        assert not dev.send(b"w" * 1000)
    with pytest.raises(DeviceError, match="shorter than an Ethernet header"):
        dev.send(b"tiny")
    assert dev.stats == NetworkStats(
        rx_frames=1, rx_bytes=100, rx_errors=1, tx_frames=sent, tx_bytes=1000 * sent, tx_dropped=4, tx_errors=1,
    )
    assert peer.recv(2000) == bytes(12) + b"w" * 1000
    dev.close()


def test_write_errors_are_device_errors(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    dev = fake_tap(ours.fileno(), backend)
    peer.close()  # the other end is gone: EPIPE
    with pytest.raises(DeviceError, match="writing TAP fake0"):
        run(dev.write(b"x" * 60))
    assert dev.stats.tx_errors == 1 and dev.stats.tx_frames == 0
    dev.close()


def test_tx_offload_header(backend: ModuleType, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    frame = make_udp_frame(random_mac(), random_mac(), "10.1.1.1", "10.1.1.2", 9, 9, b"p" * 100, partial=True)
    plain = fake_tap(ours.fileno(), backend)
    with pytest.raises(DeviceError, match="offload=True"):
        plain.send(frame, TxOffload(34, 6))
    plain.close()
    dev = fake_tap(ours.fileno(), backend, Offloads(tx_csum=True))
    assert dev.send(frame, TxOffload(34, 6))
    assert peer.recv(4096) == vnet_header(flags=1, start=34, offset=6) + frame
    with pytest.raises(DeviceError, match="TSO"):
        dev.send(frame, TxOffload(34, 16, gso_type=1, gso_size=1448, hdr_len=54))
    with pytest.raises(DeviceError, match="gso_type 3"):
        dev.send(frame, TxOffload(34, 6, gso_type=3, gso_size=1000, hdr_len=42))
    with pytest.raises(DeviceError, match="outside"):
        dev.send(frame, TxOffload(len(frame) - 1, 0))
    with pytest.raises(DeviceError, match="outside the virtio-net header's range"):
        dev.send(frame, TxOffload(34, 6, hdr_len=70000))
    dev.close()
    tso = fake_tap(ours.fileno(), backend, Offloads(tx_csum=True, tso=True, gro=True))
    assert tso.send(frame, TxOffload(34, 16, gso_type=4 | 0x80, gso_size=1440, hdr_len=74))
    assert peer.recv(4096)[:12] == vnet_header(flags=1, gso=0x84, hdr_len=74, gso_size=1440, start=34, offset=16)
    tso.close()
    assert (plain.stats.tx_errors, dev.stats.tx_errors, dev.stats.tx_frames) == (1, 4, 1)


# --- real TAP devices (root, /dev/net/tun, network namespaces) ----------------------------


needs_tap = pytest.mark.skipif(tap_unavailable() is not None, reason=str(tap_unavailable()))


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=15)


@dataclass
class Namespace:
    name: str
    prefix: str  # "10.x.y"

    @property
    def host(self) -> str:
        return f"{self.prefix}.1"

    @property
    def unik(self) -> str:
        return f"{self.prefix}.2"

    def adopt(self, ifname: str) -> bytes:
        """Move the TAP in, give it .1/24, bring it up; return its (kernel-side) MAC."""
        sh("ip", "link", "set", ifname, "netns", self.name)
        sh("ip", "-n", self.name, "addr", "add", f"{self.host}/24", "dev", ifname)
        sh("ip", "-n", self.name, "link", "set", ifname, "up")
        out = sh("ip", "-n", self.name, "-o", "link", "show", ifname).stdout
        match = re.search(r"link/ether ([0-9a-f:]{17})", out)
        assert match, out
        return bytes.fromhex(match.group(1).replace(":", ""))

    def neigh(self, mac: bytes, ifname: str) -> None:
        sh("ip", "-n", self.name, "neigh", "replace", self.unik, "lladdr", mac.hex(":"), "dev", ifname,
           "nud", "permanent")

    async def python(self, code: str, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.name, sys.executable, "-c", code, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )


@pytest.fixture
def netns() -> Iterator[Namespace]:
    with network_namespace("unik-t") as name:
        yield Namespace(name, f"10.{random.randint(100, 250)}.{random.randint(0, 255)}")


@pytest.fixture
def ifname() -> str:
    return f"ukt{secrets.token_hex(5)}"


@contextlib.contextmanager
def opened(name: str, ifname: str, backend: ModuleType, offload: bool = False) -> Iterator[TapNetwork]:
    dev = TapNetwork.open_sync(name, ifname, offload=offload, io=backend, create=True)
    try:
        yield dev
    finally:
        dev.close()


async def read_until(dev: TapNetwork, match: Callable[[bytes], bool], timeout: float = TIMEOUT) -> bytes:
    """The first frame that matches, skipping others, within ``timeout`` seconds."""
    async def scan() -> bytes:
        for _ in range(1000):
            for frame in await dev.read():
                if match(frame):
                    return frame
        raise AssertionError("no matching frame in 1000 reads")

    return await asyncio.wait_for(scan(), timeout)


def is_arp(frame: bytes) -> bool:
    return frame[12:14] == b"\x08\x06"


def is_ipv4(proto: int) -> Callable[[bytes], bool]:
    return lambda f: len(f) >= 34 and f[12:14] == b"\x08\x00" and f[23] == proto


PING = """
import socket, struct, sys, time
dst, timeout = sys.argv[1], float(sys.argv[2])
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
body = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"unik-ping-payload!"
body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(0.2)
s.sendto(body, (dst, 0))
end = time.monotonic() + timeout
while time.monotonic() < end:
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        continue
    ihl = (data[0] & 15) * 4
    if addr[0] == dst and data[ihl] == 0 and data[ihl + 4:ihl + 6] == b"\\x12\\x34":
        print("reply"); sys.exit(0)
sys.exit(1)
"""

UDP_SEND = """
import socket, sys
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    for i in range(n):
        s.sendto(b"datagram %03d " % i + b"x" * (i * 37 % 200), (dst, port))
"""

UDP_RECV = """
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind((addr, port)); s.settimeout(5)
    print("ready", flush=True)
    data, peer = s.recvfrom(4096)
    print(data.decode(), peer[0], peer[1], flush=True)
"""


def arp_reply(ours: bytes, theirs: bytes, our_ip: str, their_ip: str) -> bytes:
    return theirs + ours + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + ours \
        + ipaddress.IPv4Address(our_ip).packed + theirs + ipaddress.IPv4Address(their_ip).packed


@needs_tap
def test_open_names_and_attributes(backend: ModuleType, ifname: str) -> None:
    for word in (None, "tap", "socket"):
        dev = run(TapNetwork.connect(ifname, word, create=True))
        assert dev.ifname == ifname and dev._io is backend
        assert f"{ifname}:" in sh("ip", "link", "show", ifname).stdout
        assert ",UP" in sh("ip", "link", "show", ifname).stdout
        assert "inet " not in sh("ip", "addr", "show", ifname).stdout  # we assign no IPv4 address
        kernel_mac = re.search(r"link/ether ([0-9a-f:]{17})", sh("ip", "link", "show", ifname).stdout)
        assert kernel_mac and dev.mac.hex(":") != kernel_mac.group(1)
        assert len(dev.mac) == 6 and dev.mac[0] & 0x02 and not dev.mac[0] & 0x01
        assert dev.mtu == 1500 and dev.offloads == Offloads()
        run(dev.disconnect())
        assert sh("ip", "link", "show", ifname, check=False).returncode != 0  # gone with the fd
    # A name pattern: the kernel picks the number, the device reports the real name.
    with opened("net", "uktp%d", backend) as dev:
        assert re.fullmatch(r"uktp\d+", dev.ifname), dev.ifname
        assert sh("ip", "link", "show", dev.ifname).returncode == 0
    # A persistent TAP made by root: attached, its MTU read, left in place on disconnect.
    sh("ip", "tuntap", "add", ifname, "mode", "tap", "vnet_hdr")
    try:
        sh("ip", "link", "set", ifname, "mtu", "1400")
        with opened("net", ifname, backend) as dev:
            assert dev.mtu == 1400
            assert ",UP" in sh("ip", "link", "show", ifname).stdout
        assert sh("ip", "link", "show", ifname, check=False).returncode == 0
    finally:
        sh("ip", "tuntap", "del", ifname, "mode", "tap", check=False)


@needs_tap
def test_offload_negotiation(backend: ModuleType, ifname: str) -> None:
    with opened("net", ifname, backend, offload=True) as dev:
        assert dev.offloads == Offloads(tx_csum=True, tso=True, rx_csum=False, gro=True)


@needs_tap
def test_open_errors(backend: ModuleType, ifname: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with opened("net", ifname, backend), pytest.raises(DeviceUnavailable, match="already in use"):
        TapNetwork.open_sync("net", ifname, io=backend)
    with pytest.raises(DeviceUnavailable, match="not a valid interface name"):
        TapNetwork.open_sync("net", "x" * 16, io=backend)
    with pytest.raises(DeviceUnavailable, match="not a valid interface name"):
        TapNetwork.open_sync("net", "a/b", io=backend)
    with pytest.raises(DeviceUnavailable, match="not a TAP device"):
        TapNetwork.open_sync("net", "lo", io=backend)
    # A TAP that does not exist is refused, not created (it would vanish with us, without an address)
    with pytest.raises(DeviceUnavailable) as missing:
        TapNetwork.open_sync("net", ifname, io=backend)
    assert str(missing.value) == (f"network device net: there is no TAP {ifname} here: create it first (ip tuntap "
                                  f"add {ifname} mode tap; ip addr add ... dev {ifname}), or let unik make one: "
                                  f"--net net=auto")
    assert sh("ip", "link", "show", ifname, check=False).returncode != 0
    with pytest.raises(DeviceUnavailable, match="=auto is done by `unik run`"):
        TapNetwork.open_sync("net", "auto", io=backend)
    monkeypatch.setattr(tap_mod, "TUN_PATH", "/nonexistent/tun")
    with pytest.raises(DeviceUnavailable, match=r"/nonexistent/tun does not exist: load the tun module"):
        TapNetwork.open_sync("net", ifname, io=backend, create=True)


def _drop_cap_net_admin() -> None:
    """Remove CAP_NET_ADMIN (12, <linux/capability.h>) from this process's sets."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # 2 x {effective, permitted, inheritable}
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for i in (0, 1, 2):
        data[i] &= ~(1 << 12)
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


@needs_tap
def test_no_cap_net_admin(backend: ModuleType, ifname: str) -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            _drop_cap_net_admin()
            try:
                TapNetwork.open_sync("net", ifname, io=backend, create=True)
            except DeviceUnavailable as exc:
                os.write(w, str(exc).encode())
                status = 0
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "open without CAP_NET_ADMIN did not fail"
    assert "needs root or CAP_NET_ADMIN" in message and f"ip tuntap add {ifname}" in message


@needs_tap
def test_arp_and_ping_with_the_kernel(backend: ModuleType, netns: Namespace, ifname: str) -> None:
    with opened("net", ifname, backend) as dev:
        kernel_mac = netns.adopt(ifname)

        async def go() -> None:
            ping = await netns.python(PING, netns.unik, "5")
            try:
                # The kernel asks who has .2 (RFC 826), from its MAC, for .2, broadcast.
                req = await read_until(dev, is_arp)
                assert req[:6] == b"\xff" * 6 and req[6:12] == kernel_mac
                htype, ptype, hlen, plen, oper = struct.unpack_from("!HHBBH", req, 14)
                assert (htype, ptype, hlen, plen, oper) == (1, 0x0800, 6, 4, 1)
                assert req[22:28] == kernel_mac
                assert req[28:32] == ipaddress.IPv4Address(netns.host).packed
                assert req[38:42] == ipaddress.IPv4Address(netns.unik).packed
                await dev.write(arp_reply(dev.mac, kernel_mac, netns.unik, netns.host))
                # Then the echo request comes to the unik MAC.
                echo = await read_until(dev, is_ipv4(1))
                assert echo[:6] == dev.mac and echo[6:12] == kernel_mac
                ip = echo[14:34]
                assert reference_checksum(ip) == 0
                assert ip[12:16] == ipaddress.IPv4Address(netns.host).packed
                assert ip[16:20] == ipaddress.IPv4Address(netns.unik).packed
                icmp = echo[34:14 + struct.unpack_from("!H", ip, 2)[0]]
                assert icmp[0] == 8 and reference_checksum(icmp) == 0
                assert icmp.endswith(b"unik-ping-payload!")
                # Answer it: the ping in the namespace exits 0 only on our reply.
                reply_icmp = b"\x00\x00\x00\x00" + icmp[4:]
                reply_icmp = reply_icmp[:2] + struct.pack("!H", reference_checksum(reply_icmp)) + reply_icmp[4:]
                reply_ip = ip[:8] + b"\x40" + ip[9:10] + b"\0\0" + ip[16:20] + ip[12:16]
                reply_ip = reply_ip[:10] + struct.pack("!H", reference_checksum(reply_ip)) + reply_ip[12:]
                await dev.write(kernel_mac + dev.mac + b"\x08\x00" + reply_ip + reply_icmp)
                out, err = await asyncio.wait_for(ping.communicate(), 10)
                assert ping.returncode == 0, err.decode()
                assert out.decode().strip() == "reply"
            finally:
                if ping.returncode is None:
                    ping.kill()
                    await ping.wait()

        run(go())
        neigh = sh("ip", "-n", netns.name, "neigh", "show", netns.unik, "dev", ifname).stdout
        assert dev.mac.hex(":") in neigh, neigh
        assert dev.stats.tx_frames == 2 and dev.stats.tx_errors == dev.stats.tx_dropped == 0
        assert dev.stats.rx_frames >= 2 and dev.stats.rx_errors == 0


@needs_tap
def test_batched_reads(backend: ModuleType, netns: Namespace, ifname: str) -> None:
    with opened("net", ifname, backend) as dev:
        netns.adopt(ifname)
        netns.neigh(dev.mac, ifname)

        async def send(n: int) -> None:
            proc = await netns.python(UDP_SEND, netns.unik, "7777", str(n))
            _, err = await asyncio.wait_for(proc.communicate(), 10)
            assert proc.returncode == 0, err.decode()
            await asyncio.sleep(0.1)  # let the kernel finish queueing

        def udp(frames: list[bytes]) -> list[bytes]:
            return [f for f in frames if is_ipv4(17)(f) and f[36:38] == b"\x1e\x61"]

        async def go() -> None:
            await send(12)
            before = dev.stats.rx_frames
            batch = await asyncio.wait_for(dev.read(limit=64), TIMEOUT)  # one call, one C drain
            got = udp(batch)
            assert len(got) == 12, [f[12:14].hex() for f in batch]
            assert [f[42:54] for f in got] == [b"datagram %03d" % i for i in range(12)]
            assert all(udp_checksum_ok(f) for f in got)
            assert dev.stats.rx_frames == before + len(batch)
            await send(5)
            first = await asyncio.wait_for(dev.read(limit=2), TIMEOUT)
            assert len(first) == 2
            rest = await asyncio.wait_for(dev.read(limit=64), TIMEOUT)
            assert len(udp(first + rest)) == 5

        run(go())
        assert dev.rx_csum_completed == 0  # offloads off: the kernel finished every checksum


@needs_tap
def test_checksum_completion(backend: ModuleType, netns: Namespace, ifname: str) -> None:
    """With offload=True the kernel hands over UDP with NEEDS_CSUM; we finish it."""
    with opened("net", ifname, backend, offload=True) as dev:
        netns.adopt(ifname)
        netns.neigh(dev.mac, ifname)

        async def go() -> bytes:
            proc = await netns.python(UDP_SEND, netns.unik, "9999", "1")
            _, err = await asyncio.wait_for(proc.communicate(), 10)
            assert proc.returncode == 0, err.decode()
            return await read_until(dev, is_ipv4(17))

        frame = run(go())
        assert dev.rx_csum_completed >= 1
        assert udp_checksum_ok(frame)
        # recompute from scratch, independently, and compare the stored field
        length = struct.unpack_from("!H", frame, 38)[0]
        zeroed = frame[34:40] + b"\0\0" + frame[42:34 + length]
        expected = reference_checksum(pseudo_header(frame[26:30], frame[30:34], 17, length) + zeroed) or 0xFFFF
        assert struct.unpack_from("!H", frame, 40)[0] == expected


@needs_tap
def test_transmit_checksum_offload(backend: ModuleType, netns: Namespace, ifname: str) -> None:
    """A frame sent with a partial checksum and TxOffload is accepted by the kernel."""
    with opened("net", ifname, backend, offload=True) as dev:
        kernel_mac = netns.adopt(ifname)
        netns.neigh(dev.mac, ifname)

        async def go() -> str:
            recv = await netns.python(UDP_RECV, netns.host, "5555")
            try:
                assert recv.stdout is not None
                assert (await asyncio.wait_for(recv.stdout.readline(), 10)).strip() == b"ready"
                frame = make_udp_frame(dev.mac, kernel_mac, netns.unik, netns.host, 4321, 5555,
                                       b"offloaded checksum", partial=True)
                await dev.write(frame, TxOffload(csum_start=34, csum_offset=6))
                out, err = await asyncio.wait_for(recv.communicate(), 10)
                assert recv.returncode == 0, err.decode()
                return out.decode().strip()
            finally:
                if recv.returncode is None:
                    recv.kill()
                    await recv.wait()

        assert run(go()) == f"offloaded checksum {netns.unik} 4321"
        assert dev.stats.tx_frames == 1


# --- adopting a TAP descriptor someone else opened (unik's spt tender) ------------------------


def test_adopt_with_name_mtu_and_mac_makes_no_system_call(
    backend: ModuleType, pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair

    def refused(*args: object) -> None:
        raise AssertionError("adopting a described TAP made a system call")

    monkeypatch.setattr(f"{tap_mod.__name__}.fcntl.ioctl", refused)
    monkeypatch.setattr(f"{tap_mod.__name__}.os.getrandom", refused)
    monkeypatch.setattr(f"{tap_mod.__name__}.socket.socket", refused)
    dev = TapNetwork.open_sync("net", "tap7", fd=a.fileno(), mtu=1400, mac="02:00:00:00:00:07", io=backend)
    monkeypatch.undo()
    assert (dev.ifname, dev.mtu, dev.mac, dev.offloads) == ("tap7", 1400, bytes.fromhex("020000000007"), Offloads())
    frame = b"\xff" * 6 + dev.mac + b"\x88\xb5" + b"adopted".ljust(46, b"\0")
    run(dev.write(frame))
    assert b.recv(2048) == bytes(VNET) + frame


def test_adopt_errors_name_the_device(backend: ModuleType) -> None:
    with pytest.raises(DeviceUnavailable, match="'net': 'zz' is not a unicast MAC"):
        TapNetwork.open_sync("net", "tap7", fd=0, mtu=1500, mac="zz", io=backend)
    with pytest.raises(DeviceUnavailable, match="not a unicast MAC"):
        TapNetwork.open_sync("net", "tap7", fd=0, mtu=1500, mac="03:00:00:00:00:01", io=backend)
    with pytest.raises(DeviceUnavailable, match="MTU 20 is outside"):
        TapNetwork.open_sync("net", "tap7", fd=0, mtu=20, io=backend)
    with pytest.raises(DeviceUnavailable, match="-1 is not a file descriptor"):
        TapNetwork.open_sync("net", fd=-1, io=backend)
    r, w = os.pipe()
    try:
        with pytest.raises(DeviceUnavailable, match=f"descriptor {r} is not a usable TAP"):
            TapNetwork.open_sync("net", fd=r, io=backend)  # TUNGETIFF on a pipe
    finally:
        os.close(r)
        os.close(w)


@needs_tap
def test_adopt_an_open_tap_asks_the_kernel_its_name_and_mtu(backend: ModuleType, ifname: str) -> None:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        flags = backend.IFF_TAP | backend.IFF_NO_PI | backend.IFF_VNET_HDR
        fcntl_ioctl = fcntl.ioctl
        fcntl_ioctl(fd, backend.TUNSETIFF, struct.pack("16sH", ifname.encode(), flags).ljust(40, b"\0"))
        fcntl_ioctl(fd, backend.TUNSETVNETHDRSZ, struct.pack("i", VNET))
        sh("ip", "link", "set", ifname, "mtu", "1280")
    except BaseException:
        os.close(fd)
        raise
    dev = TapNetwork.open_sync("net", fd=fd, io=backend)
    try:
        assert (dev.ifname, dev.mtu, dev.fileno()) == (ifname, 1280, fd)
        assert ",UP" in sh("ip", "link", "show", ifname).stdout
    finally:
        dev.close()
    assert sh("ip", "link", "show", ifname, check=False).returncode != 0  # closing the adopted fd removed it
