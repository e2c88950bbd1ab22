"""IPv4 fragment reassembly (RFC 791 3.2, RFC 815) under memory and time limits.

Overlapping fragments are a classic attack (RFC 1858, the teardrop family): a
fragment that overlaps another with different bounds discards the whole datagram.
An exact duplicate (same offset and length, as a duplicating link produces) is ignored.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from .errors import Malformed
from .wire.ipv4 import Ipv4Packet

_Key = tuple[bytes, bytes, int, int]


class _Datagram:
    # A plain class, not a dataclass: those compile generated code as the stack is imported.
    __slots__ = ("first_ns", "fragments", "header", "size", "total")

    def __init__(self, first_ns: int) -> None:
        self.first_ns = first_ns
        self.header = b""
        self.total: int | None = None
        self.size = 0
        self.fragments: dict[int, bytes] = {}


class Reassembler:
    """Collects fragments and returns whole datagrams."""

    def __init__(self, stats: Counter[str], *, max_datagrams: int = 64, max_bytes: int = 1 << 20,
                 timeout_ns: int = 30 * 10**9, max_fragments: int = 64) -> None:
        self.stats = stats
        self.max_fragments = max_fragments
        self.max_datagrams, self.max_bytes, self.timeout_ns = max_datagrams, max_bytes, timeout_ns
        self.datagrams: OrderedDict[_Key, _Datagram] = OrderedDict()
        self.bytes = 0

    def add(self, ip: Ipv4Packet, now_ns: int) -> bytes | None:
        """Add a fragment; return the reassembled datagram (header and data) when complete."""
        payload = ip.payload
        offset = ip.frag_offset
        end = offset + len(payload)
        if ip.more_fragments and (len(payload) % 8 or not payload):
            # RFC 791 3.2: every fragment but the last carries a multiple of 8 octets.
            raise Malformed("ipv4.frag_bad_length", f"{len(payload)} bytes with MF")
        if end > 65535 - ip.header_len:
            raise Malformed("ipv4.frag_too_long", f"ends at {end}")
        key = (ip.src, ip.dst, ip.proto, ip.ident)
        dgram = self.datagrams.get(key)
        if dgram is None:
            if len(self.datagrams) >= self.max_datagrams:
                self._drop_oldest("ipv4.frag_evicted")
            dgram = self.datagrams[key] = _Datagram(now_ns)
        if len(dgram.fragments) >= self.max_fragments:
            self._discard(key, "ipv4.frag_too_many")
            return None
        for other_off, data in dgram.fragments.items():
            other_end = other_off + len(data)
            if other_off < end and offset < other_end:
                if other_off == offset and other_end == end:
                    self.stats["ipv4.frag_duplicate"] += 1
                    return None
                self._discard(key, "ipv4.frag_overlap")
                return None
        if not ip.more_fragments:
            if dgram.total is not None and dgram.total != end:
                self._discard(key, "ipv4.frag_inconsistent")
                return None
            dgram.total = end
        if dgram.total is not None and end > dgram.total:
            self._discard(key, "ipv4.frag_inconsistent")
            return None
        if offset == 0:
            dgram.header = bytes(ip.buf[:ip.header_len])
        dgram.fragments[offset] = bytes(payload)
        dgram.size += len(payload)
        self.bytes += len(payload)
        while self.bytes > self.max_bytes and self.datagrams:
            self._drop_oldest("ipv4.frag_memory")
        if key not in self.datagrams or dgram.total is None or dgram.size != dgram.total or not dgram.header:
            return None
        # No overlaps and the sizes add up to the total: the fragments tile [0, total).
        del self.datagrams[key]
        self.bytes -= dgram.size
        data = b"".join(dgram.fragments[o] for o in sorted(dgram.fragments))
        header = bytearray(dgram.header)
        total_len = len(header) + len(data)
        header[2:4] = total_len.to_bytes(2, "big")
        header[6:8] = b"\x00\x00"  # no MF, offset 0 (the checksum is not re-verified)
        self.stats["ipv4.reassembled"] += 1
        return bytes(header) + data

    def expire(self, now_ns: int) -> None:
        """Discard datagrams older than the timeout (RFC 791 3.2's timer)."""
        for key in [k for k, d in self.datagrams.items() if now_ns - d.first_ns >= self.timeout_ns]:
            self._discard(key, "ipv4.frag_timeout")

    def _discard(self, key: _Key, reason: str) -> None:
        dgram = self.datagrams.pop(key)
        self.bytes -= dgram.size
        self.stats[reason] += 1

    def _drop_oldest(self, reason: str) -> None:
        self._discard(next(iter(self.datagrams)), reason)
