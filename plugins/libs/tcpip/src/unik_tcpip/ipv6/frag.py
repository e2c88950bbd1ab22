"""IPv6 fragmentation and reassembly (RFC 8200 4.5) under memory, count and time bounds.

RFC 5722: a fragment overlapping another drops the whole datagram, and the fragments of
it still to come (remembered for the reassembly timeout).  RFC 7112: the first fragment
must hold the whole header chain and the start of the upper-layer header, else the
datagram is dropped and the sender told (Parameter Problem code 3).  Exact duplicates
(a duplicating link) are ignored rather than called overlaps, as RFC 8200 4.5 permits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..errors import Malformed
from ..reassembly import FragmentTable
from . import wire


class Reassembler6(FragmentTable):
    """IPv6 fragments in, whole datagrams (IPv6 header, unfragmentable part, data) out."""

    def __init__(self, stats: Counter[str], *, max_datagrams: int = 64, max_bytes: int = 1 << 20,
                 timeout_ns: int = 60 * 10**9, max_fragments: int = 64) -> None:
        # RFC 5722: a datagram dropped for overlap drops its fragments still to come.
        super().__init__(stats, "ipv6", max_datagrams=max_datagrams, max_bytes=max_bytes, timeout_ns=timeout_ns,
                         max_fragments=max_fragments, remember_dropped=True, same_content=True)

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
        first = None
        if offset == 0:
            _check_first(pkt, chain)
            unfragmentable = bytearray(pkt.buf[:frag_at])
            unfragmentable[chain.nh_at] = pkt.buf[frag_at]  # the fragment header's next header takes its place
            first = bytes(unfragmentable)
        whole = self.add_fragment((pkt.src, pkt.dst, ident), offset, payload, more, first, now_ns)
        if whole is None:
            return None
        out, data = bytearray(whole[0]), whole[1]
        out[4:6] = (len(out) - wire.HEADER_LEN + len(data)).to_bytes(2, "big")
        return bytes(out) + data

    def expire(self, now_ns: int, timed_out: Callable[[bytes], None] | None = None) -> None:
        """Drop datagrams older than the timeout (RFC 8200 4.5: 60 s).

        ``timed_out(first)`` is called with the first fragment's headers of each one whose
        first fragment came (the sender hears Time Exceeded, code 1).
        """
        for first in self.expire_datagrams(now_ns):
            if timed_out is not None:
                timed_out(first)


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
