"""Pure-Python twin of :mod:`unik_fdio._packet`: the same API over plain ``recv``.

Used with ``UNIK_PURE=1`` or when the C module is not built.  There is no shared ring:
each :meth:`Ring.read` receives frames one system call at a time.
"""

from __future__ import annotations

import fcntl
import socket
import struct

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_ALLMULTI = 2
SIOCGIFHWADDR = 0x8927
SIOCGIFMTU = 0x8921
_FRAME_MAX = 65536


class Ring:
    """An AF_PACKET socket bound to one interface, with the C ring's methods."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock: socket.socket | None = sock

    def _open(self) -> socket.socket:
        if self._sock is None:
            raise ValueError("the packet ring is closed")
        return self._sock

    def read(self, limit: int) -> list[bytes]:
        """Frames already received, at most ``limit``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        sock = self._open()
        out: list[bytes] = []
        while len(out) < limit:
            try:
                out.append(sock.recv(_FRAME_MAX))
            except BlockingIOError:
                break
        return out

    def send(self, frame: bytes) -> bool:
        """Send one frame; False if the queue was full."""
        try:
            self._open().send(frame, socket.MSG_DONTWAIT)
        except (BlockingIOError, OSError) as exc:
            if isinstance(exc, BlockingIOError) or exc.errno == 105:  # ENOBUFS
                return False
            raise
        return True

    def drops(self) -> int:
        """Frames the kernel dropped since the last call."""
        raw = self._open().getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        return int(struct.unpack("II", raw)[1])

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self._sock.fileno() if self._sock is not None else -1

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def open(ifname: str, block_size: int, block_count: int, frame_size: int, timeout_ms: int) -> Ring:
    """A socket bound to ``ifname`` (the ring geometry is checked, then unused)."""
    if block_size <= 0 or block_count <= 0 or frame_size <= 0 or block_size < frame_size:
        raise ValueError("bad ring geometry")
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.htons(ETH_P_ALL))
    try:
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass
        sock.bind((ifname, ETH_P_ALL))
        # Every multicast frame too (see _packet.c): IPv6's neighbour discovery is multicast.
        mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_ALLMULTI, 0, b"")
        try:
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError:
            pass
    except BaseException:
        sock.close()
        raise
    return Ring(sock)


def interface(ifname: str) -> tuple[bytes, int]:
    """``(mac, mtu)`` of ``ifname``."""
    name = ifname.encode()
    if len(name) >= 16:
        raise ValueError(f"interface name {ifname} is too long")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:  # see _packet.c: cheap to close
        hw = fcntl.ioctl(s, SIOCGIFHWADDR, struct.pack("16s16x", name))
        mtu = fcntl.ioctl(s, SIOCGIFMTU, struct.pack("16s16x", name))
    return hw[18:24], int(struct.unpack_from("i", mtu, 16)[0])
