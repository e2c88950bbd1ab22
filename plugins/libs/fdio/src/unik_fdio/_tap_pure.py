"""Pure-Python twin of :mod:`unik_fdio._tap` (selected by ``UNIK_PURE=1``).

Same functions, results and exceptions as the C module.  The constants are those of
the kernel's uapi headers; the ioctl numbers use the generic ``_IOC`` encoding of
``<asm-generic/ioctl.h>`` (x86, arm, arm64, riscv, s390; not powerpc, mips or sparc,
where only the C module is right).
"""

from __future__ import annotations

import os

__all__ = ["read_frames", "write_frame", "complete_checksum", "internet_checksum"]


def _ioc(direction: int, kind: str, nr: int, size: int) -> int:
    """``_IOC(dir, type, nr, size)`` of <asm-generic/ioctl.h>."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


_IOC_WRITE = 1
_IOC_READ = 2
_INT = 4  # sizeof(int) and sizeof(unsigned int)

# <linux/virtio_net.h>: struct virtio_net_hdr_v1 is 12 bytes.
VNET_HDR_LEN = 12
# <linux/if_ether.h>
ETH_HLEN = 14
# <linux/if_tun.h>
TUNSETIFF = _ioc(_IOC_WRITE, "T", 202, _INT)
TUNSETOFFLOAD = _ioc(_IOC_WRITE, "T", 208, _INT)
TUNGETIFF = _ioc(_IOC_READ, "T", 210, _INT)
TUNSETVNETHDRSZ = _ioc(_IOC_WRITE, "T", 216, _INT)
TUNSETVNETLE = _ioc(_IOC_WRITE, "T", 220, _INT)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
# <linux/sockios.h>
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFMTU = 0x8921
# <linux/if.h>
IFF_UP = 0x1
IFNAMSIZ = 16
# <linux/virtio_net.h>
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_ECN = 0x80

_Buffer = bytes | bytearray | memoryview


def _ones_sum(data: _Buffer) -> int:
    """RFC 1071 ones' complement sum of big-endian 16-bit words, folded (not inverted).

    A number written in base 65536 is congruent modulo 65535 to the sum of its digits,
    and end-around-carry addition is addition modulo 65535, so the sum is the value
    of the bytes modulo 0xffff — except that a non-zero multiple reads as 0xffff.
    """
    raw = bytes(data)
    if len(raw) & 1:
        raw += b"\0"
    value = int.from_bytes(raw, "big")
    folded = value % 0xFFFF
    return folded if folded or not value else 0xFFFF


def internet_checksum(data: _Buffer, /) -> int:
    """The RFC 1071 Internet checksum of ``data``: the complement of its ones' complement sum."""
    return ~_ones_sum(data) & 0xFFFF


def _complete(frame: bytearray | memoryview, start: int, offset: int) -> bool:
    """Complete a partial checksum in place; False if the offsets do not fit."""
    n = len(frame)
    if start < 0 or offset < 0 or start > n or offset > n - start or n - start - offset < 2:
        return False
    # virtio spec 5.1.6.2 / Linux skb_checksum_help: the field holds the pseudo-header
    # sum; 0 is sent as 0xffff (CSUM_MANGLED_0, required for UDP by RFC 768).
    c = internet_checksum(frame[start:]) or 0xFFFF
    frame[start + offset:start + offset + 2] = c.to_bytes(2, "big")
    return True


def complete_checksum(frame: bytearray | memoryview, csum_start: int, csum_offset: int, /) -> None:
    """Complete, in place, a partial checksum as a NIC would for NEEDS_CSUM."""
    view = memoryview(frame)
    if view.readonly:
        raise TypeError("complete_checksum() argument 1 must be read-write bytes-like object")
    if not _complete(view.cast("B"), csum_start, csum_offset):
        raise ValueError("checksum offsets outside the frame")


def read_frames(fd: int, limit: int, bufsize: int, /) -> tuple[list[bytes], int, int]:
    """Read frames until EAGAIN or ``limit``; strip headers, complete partial checksums.

    Returns ``(frames, malformed, completed)``; an error after some frames ends the
    batch, an error before any raises OSError.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if bufsize < VNET_HDR_LEN + ETH_HLEN:
        raise ValueError("bufsize is smaller than a header and an Ethernet header")
    frames: list[bytes] = []
    malformed = completed = seen = 0
    while seen < limit:
        try:
            data = os.read(fd, bufsize)  # retried on EINTR (PEP 475)
        except BlockingIOError:
            break
        except OSError:
            if seen:
                break
            raise
        if not data:
            break
        seen += 1
        if len(data) < VNET_HDR_LEN + ETH_HLEN:
            malformed += 1
            continue
        if data[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            frame = bytearray(data[VNET_HDR_LEN:])
            start = int.from_bytes(data[6:8], "little")
            offset = int.from_bytes(data[8:10], "little")
            if not _complete(frame, start, offset):
                malformed += 1
                continue
            completed += 1
            frames.append(bytes(frame))
        else:
            frames.append(data[VNET_HDR_LEN:])
    return frames, malformed, completed


def write_frame(fd: int, header: _Buffer, frame: _Buffer, /) -> bool:
    """Send ``header + frame`` with one writev(); False if the TAP queue is full."""
    total = memoryview(header).nbytes + memoryview(frame).nbytes
    try:
        n = os.writev(fd, [header, frame])  # retried on EINTR (PEP 475)
    except BlockingIOError:
        return False
    if n != total:
        raise OSError(f"short write to TAP: {n} of {total} bytes")
    return True
