"""IPv6 fragmentation and reassembly (RFC 8200 4.5) under memory, count and time bounds.

RFC 5722: a fragment overlapping another drops the whole datagram, and the fragments of
it still to come (remembered for the reassembly timeout).  RFC 7112: the first fragment
must hold the whole header chain and the start of the upper-layer header, else the
datagram is dropped and the sender told (Parameter Problem code 3).  Exact duplicates
(a duplicating link) are ignored rather than called overlaps, as RFC 8200 4.5 permits.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

from ..errors import Malformed
from . import wire

_Key = tuple[bytes, bytes, int]


class _Datagram:
    __slots__ = ("first", "first_ns", "fragments", "size", "total")

    def __init__(self, first_ns: int) -> None:
        self.first_ns = first_ns
        #: The first fragment's unfragmentable part, with its next-header byte rewritten.
        self.first = b""
        self.total: int | None = None
        self.size = 0
        self.fragments: dict[int, bytes] = {}


class Reassembler6:
    """Collects fragments; returns whole datagrams (IPv6 header, unfragmentable part, data)."""

    def __init__(self, stats: Counter[str], *, max_datagrams: int = 64, max_bytes: int = 1 << 20,
                 timeout_ns: int = 60 * 10**9, max_fragments: int = 64) -> None:
        self.stats = stats
        self.max_datagrams, self.max_bytes, self.timeout_ns = max_datagrams, max_bytes, timeout_ns
        self.max_fragments = max_fragments
        self.datagrams: OrderedDict[_Key, _Datagram] = OrderedDict()
        #: Datagrams dropped for overlap (RFC 5722): their later fragments are dropped too, until then.
        self.dead: OrderedDict[_Key, int] = OrderedDict()
        self.bytes = 0

    def add(self, pkt: wire.Ipv6Packet, chain: wire.Chain, now_ns: int) -> bytes | None:
        """Add the fragment ``chain`` found in ``pkt``; the reassembled datagram when complete."""
        assert chain.frag is not None
        frag_at, offset, more, ident = chain.frag
        payload = pkt.buf[chain.offset:]
        end = offset + len(payload)
        if more and (len(payload) % 8 or not payload):
            # RFC 8200 4.5: all but the last fragment carry a multiple of 8 octets.
            raise wire.ParameterProblem("ipv6.frag_bad_length", 0, 4)
        if chain.offset - wire.HEADER_LEN + end > 65535:
            raise wire.ParameterProblem("ipv6.frag_too_long", 0, frag_at + 2)
        if offset == 0:
            _check_first(pkt, chain)
        key = (pkt.src, pkt.dst, ident)
        if key in self.dead:
            self.stats["ipv6.frag_of_dropped_datagram"] += 1
            return None
        dgram = self.datagrams.get(key)
        if dgram is None:
            if len(self.datagrams) >= self.max_datagrams:
                self._drop_oldest("ipv6.frag_evicted")
            dgram = self.datagrams[key] = _Datagram(now_ns)
        if len(dgram.fragments) >= self.max_fragments:
            self._kill(key, "ipv6.frag_too_many", now_ns)
            return None
        for other_off, data in dgram.fragments.items():
            other_end = other_off + len(data)
            if other_off < end and offset < other_end:
                if other_off == offset and other_end == end and data == payload:
                    self.stats["ipv6.frag_duplicate"] += 1
                    return None
                self._kill(key, "ipv6.frag_overlap", now_ns)
                return None
        if not more:
            if dgram.total is not None and dgram.total != end:
                self._kill(key, "ipv6.frag_inconsistent", now_ns)
                return None
            dgram.total = end
        if dgram.total is not None and end > dgram.total:
            self._kill(key, "ipv6.frag_inconsistent", now_ns)
            return None
        if offset == 0:
            first = bytearray(pkt.buf[:frag_at])
            first[chain.nh_at] = pkt.buf[frag_at]  # the fragment header's next header takes its place
            dgram.first = bytes(first)
        dgram.fragments[offset] = bytes(payload)
        dgram.size += len(payload)
        self.bytes += len(payload)
        while self.bytes > self.max_bytes and self.datagrams:
            self._drop_oldest("ipv6.frag_memory")
        if key not in self.datagrams or dgram.total is None or dgram.size != dgram.total or not dgram.first:
            return None
        del self.datagrams[key]
        self.bytes -= dgram.size
        data = b"".join(dgram.fragments[o] for o in sorted(dgram.fragments))
        whole = bytearray(dgram.first)
        payload_len = len(whole) - wire.HEADER_LEN + len(data)
        whole[4:6] = payload_len.to_bytes(2, "big")
        self.stats["ipv6.reassembled"] += 1
        return bytes(whole) + data

    def expire(self, now_ns: int, timed_out: Callable[[bytes], None] | None = None) -> None:
        """Drop datagrams older than the timeout (RFC 8200 4.5: 60 s).

        ``timed_out(first)`` is called with the first fragment's headers of each one whose
        first fragment came (the sender hears Time Exceeded, code 1).
        """
        for key in [k for k, d in self.datagrams.items() if now_ns - d.first_ns >= self.timeout_ns]:
            dgram = self.datagrams[key]
            self._discard(key, "ipv6.frag_timeout")
            if dgram.first and timed_out is not None:
                timed_out(dgram.first)
        for key in [k for k, t in self.dead.items() if now_ns - t >= self.timeout_ns]:
            del self.dead[key]

    def _kill(self, key: _Key, reason: str, now_ns: int) -> None:
        self._discard(key, reason)
        self.dead[key] = now_ns
        if len(self.dead) > self.max_datagrams:
            self.dead.popitem(last=False)

    def _discard(self, key: _Key, reason: str) -> None:
        dgram = self.datagrams.pop(key)
        self.bytes -= dgram.size
        self.stats[reason] += 1

    def _drop_oldest(self, reason: str) -> None:
        self._discard(next(iter(self.datagrams)), reason)


def _check_first(pkt: wire.Ipv6Packet, chain: wire.Chain) -> None:
    """RFC 7112 5: the first fragment holds every extension header and the upper-layer header's start."""
    buf = pkt.buf
    nh, at = buf[chain.frag[0] if chain.frag else 0], chain.offset
    for _ in range(wire.MAX_HEADERS):
        if nh in wire.UPPER or nh == wire.NO_NEXT:
            break
        if nh not in (wire.HOP_BY_HOP, wire.DEST_OPTIONS, wire.ROUTING) or at + 8 > len(buf):
            if nh == wire.FRAGMENT or at + 8 > len(buf):
                raise wire.ParameterProblem("ipv6.frag_incomplete_chain", 3, 0)
            return  # an unknown header: reported when the datagram is whole
        length = (buf[at + 1] + 1) * 8
        nh, at = buf[at], at + length
    else:
        raise Malformed("ipv6.header_chain_too_long")
    need = {wire.TCP: 20, wire.UDP: 8, wire.ICMPV6: 4}.get(nh, 0)
    if at + need > len(buf):
        raise wire.ParameterProblem("ipv6.frag_incomplete_chain", 3, 0)


def fragments(packet: bytes | bytearray | memoryview, mtu: int, ident: int) -> list[bytearray]:
    """Cut an IPv6 datagram without extension headers into fragments of at most ``mtu`` bytes.

    Each fragment is its own datagram (40-byte header, fragment header, data of a
    multiple of 8 octets but the last), with no link header.
    """
    view = memoryview(packet)
    header = bytearray(view[:wire.HEADER_LEN])
    next_header = header[6]
    header[6] = wire.FRAGMENT
    data = view[wire.HEADER_LEN:]
    step = (mtu - wire.HEADER_LEN - 8) // 8 * 8
    out = []
    for off in range(0, len(data), step):
        chunk = data[off:off + step]
        more = off + step < len(data)
        frag = bytearray(header)
        frag[4:6] = (8 + len(chunk)).to_bytes(2, "big")
        frag += bytes((next_header, 0)) + (off | more).to_bytes(2, "big") + ident.to_bytes(4, "big")
        frag += chunk
        out.append(frag)
    return out
