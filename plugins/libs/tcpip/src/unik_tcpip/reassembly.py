"""Fragment reassembly under memory, count and time bounds: the core both IP families share.

:class:`FragmentTable` holds the datagrams being reassembled, by the family's key, and
applies what RFC 791 3.2 / RFC 815 (IPv4) and RFC 8200 4.5 (IPv6) have in common:
fragments tile ``[0, total)``; a fragment overlapping another with different bounds
discards the whole datagram (the teardrop family, RFC 1858; RFC 5722); an exact
duplicate (a duplicating link) is ignored; the table is bounded in datagrams, bytes,
fragments per datagram and time, each drop counted by reason (``ipv4.frag_overlap``).
Each family checks its own header and puts the datagram back together:
:class:`Reassembler` here for IPv4, :class:`unik_tcpip.ipv6.frag.Reassembler6` for IPv6.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable

from .errors import Malformed
from .wire.ipv4 import Ipv4Packet


class _Datagram:
    # A plain class, not a dataclass: those compile generated code as the stack is imported.
    __slots__ = ("first", "first_ns", "fragments", "size", "total")

    def __init__(self, first_ns: int) -> None:
        self.first_ns = first_ns
        #: The family's headers from the first fragment (offset 0); ``b""`` until it comes.
        self.first = b""
        self.total: int | None = None
        self.size = 0
        self.fragments: dict[int, bytes] = {}


class FragmentTable:
    """The datagrams of one family being reassembled, bounded; drops counted as ``<family>.frag_*``.

    ``remember_dropped``: a datagram dropped for overlap, inconsistency or too many
    fragments keeps its key for the timeout, and its later fragments are dropped too
    (RFC 5722).  ``same_content``: a duplicate must also carry the same bytes.
    """

    def __init__(self, stats: Counter[str], family: str, *, max_datagrams: int, max_bytes: int, timeout_ns: int,
                 max_fragments: int, remember_dropped: bool = False, same_content: bool = False) -> None:
        self.stats, self.family = stats, family
        self.max_datagrams, self.max_bytes, self.timeout_ns = max_datagrams, max_bytes, timeout_ns
        self.max_fragments = max_fragments
        self.remember_dropped, self.same_content = remember_dropped, same_content
        self.datagrams: OrderedDict[Hashable, _Datagram] = OrderedDict()
        #: Datagrams dropped (with ``remember_dropped``): key -> when, until the timeout.
        self.dead: OrderedDict[Hashable, int] = OrderedDict()
        self.bytes = 0

    def add_fragment(self, key: Hashable, offset: int, payload: bytes | memoryview, more: bool, first: bytes | None,
            now_ns: int) -> tuple[bytes, bytes] | None:
        """Add a fragment (``first``: the headers, given with the one at offset 0).

        Returns ``(first, data)`` when the datagram is whole, else ``None``.
        """
        if key in self.dead:
            self.stats[f"{self.family}.frag_of_dropped_datagram"] += 1
            return None
        end = offset + len(payload)
        dgram = self.datagrams.get(key)
        if dgram is None:
            if len(self.datagrams) >= self.max_datagrams:
                self._drop_oldest("frag_evicted")
            dgram = self.datagrams[key] = _Datagram(now_ns)
        if len(dgram.fragments) >= self.max_fragments:
            self._drop(key, "frag_too_many", now_ns)
            return None
        for other_off, data in dgram.fragments.items():
            other_end = other_off + len(data)
            if other_off < end and offset < other_end:
                if other_off == offset and other_end == end and (not self.same_content or data == payload):
                    self.stats[f"{self.family}.frag_duplicate"] += 1
                    return None
                self._drop(key, "frag_overlap", now_ns)
                return None
        if not more:
            if dgram.total is not None and dgram.total != end:
                self._drop(key, "frag_inconsistent", now_ns)
                return None
            dgram.total = end
        if dgram.total is not None and end > dgram.total:
            self._drop(key, "frag_inconsistent", now_ns)
            return None
        if first is not None:
            dgram.first = first
        dgram.fragments[offset] = bytes(payload)
        dgram.size += len(payload)
        self.bytes += len(payload)
        while self.bytes > self.max_bytes and self.datagrams:
            self._drop_oldest("frag_memory")
        if key not in self.datagrams or dgram.total is None or dgram.size != dgram.total or not dgram.first:
            return None
        # No overlaps and the sizes add up to the total: the fragments tile [0, total).
        del self.datagrams[key]
        self.bytes -= dgram.size
        self.stats[f"{self.family}.reassembled"] += 1
        return dgram.first, b"".join(dgram.fragments[o] for o in sorted(dgram.fragments))

    def expire_datagrams(self, now_ns: int) -> list[bytes]:
        """Discard datagrams older than the timeout; the first fragments' headers of those whose first came."""
        firsts = []
        for key in [k for k, d in self.datagrams.items() if now_ns - d.first_ns >= self.timeout_ns]:
            dgram = self.datagrams[key]
            self._discard(key, "frag_timeout")
            if dgram.first:
                firsts.append(dgram.first)
        for key in [k for k, t in self.dead.items() if now_ns - t >= self.timeout_ns]:
            del self.dead[key]
        return firsts

    def _drop(self, key: Hashable, reason: str, now_ns: int) -> None:
        self._discard(key, reason)
        if self.remember_dropped:
            self.dead[key] = now_ns
            if len(self.dead) > self.max_datagrams:
                self.dead.popitem(last=False)

    def _discard(self, key: Hashable, reason: str) -> None:
        dgram = self.datagrams.pop(key)
        self.bytes -= dgram.size
        self.stats[f"{self.family}.{reason}"] += 1

    def _drop_oldest(self, reason: str) -> None:
        self._discard(next(iter(self.datagrams)), reason)


class Reassembler(FragmentTable):
    """IPv4 fragments (RFC 791 3.2) in, whole datagrams (header and data) out."""

    def __init__(self, stats: Counter[str], *, max_datagrams: int = 64, max_bytes: int = 1 << 20,
                 timeout_ns: int = 30 * 10**9, max_fragments: int = 64) -> None:
        super().__init__(stats, "ipv4", max_datagrams=max_datagrams, max_bytes=max_bytes, timeout_ns=timeout_ns,
                         max_fragments=max_fragments)

    def add(self, ip: Ipv4Packet, now_ns: int) -> bytes | None:
        """Add a fragment; return the reassembled datagram (header and data) when complete."""
        payload = ip.payload
        end = ip.frag_offset + len(payload)
        if ip.more_fragments and (len(payload) % 8 or not payload):
            # RFC 791 3.2: every fragment but the last carries a multiple of 8 octets.
            raise Malformed("ipv4.frag_bad_length", f"{len(payload)} bytes with MF")
        if end > 65535 - ip.header_len:
            raise Malformed("ipv4.frag_too_long", f"ends at {end}")
        first = bytes(ip.buf[:ip.header_len]) if ip.frag_offset == 0 else None
        whole = self.add_fragment((ip.src, ip.dst, ip.proto, ip.ident), ip.frag_offset, payload, ip.more_fragments,
                               first, now_ns)
        if whole is None:
            return None
        header, data = bytearray(whole[0]), whole[1]
        header[2:4] = (len(header) + len(data)).to_bytes(2, "big")
        header[6:8] = b"\x00\x00"  # no MF, offset 0 (the checksum is not re-verified)
        return bytes(header) + data

    def expire(self, now_ns: int) -> None:
        """Discard datagrams older than the timeout (RFC 791 3.2's timer)."""
        self.expire_datagrams(now_ns)
