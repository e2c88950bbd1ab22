"""The resolver's cache: bounded, least recently used first out, honouring TTLs.

Positive entries hold addresses until the smallest TTL of the records that gave them
(the CNAME chain included).  Negative entries (RFC 2308) remember that a name does not
exist (NXDOMAIN) or has no record of the type (NODATA) for the SOA's negative TTL;
an answer without an SOA is not cached (RFC 2308 5).
"""

from __future__ import annotations

from collections import OrderedDict

#: Entries kept (a name and a type each); the least recently used goes first beyond it.
CACHE_ENTRIES = 512
#: The longest a positive answer is kept, whatever its TTL says (a day, as unbound's default).
MAX_POSITIVE_TTL = 86400
#: RFC 2308 5: negative answers are kept at most a few hours; ours at most 15 minutes.
MAX_NEGATIVE_TTL = 900

POSITIVE, NXDOMAIN, NODATA = "positive", "nxdomain", "nodata"


class CacheEntry:
    """One cached answer: ``kind`` is :data:`POSITIVE`, :data:`NXDOMAIN` or :data:`NODATA`."""

    __slots__ = ("addresses", "canonical", "expires_ns", "kind")

    def __init__(self, kind: str, addresses: tuple[str, ...], canonical: bytes, expires_ns: int) -> None:
        self.kind, self.addresses, self.canonical, self.expires_ns = kind, addresses, canonical, expires_ns


class Cache:
    """Answers by ``(name, type)``: at most ``limit`` entries, each until its TTL runs out."""

    def __init__(self, limit: int = CACHE_ENTRIES) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[bytes, int], CacheEntry] = OrderedDict()
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: bytes, qtype: int, now_ns: int) -> CacheEntry | None:
        """The live entry for ``name``/``qtype``, or ``None`` (an expired one is dropped)."""
        key = (name, qtype)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry.expires_ns <= now_ns:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def peek(self, name: bytes, qtype: int) -> CacheEntry | None:
        """The entry for ``name``/``qtype`` as it is (live or not), without counting or reordering."""
        return self._entries.get((name, qtype))

    def put(self, name: bytes, qtype: int, kind: str, addresses: tuple[str, ...], canonical: bytes,
            ttl: int, now_ns: int) -> None:
        """Remember an answer for ``ttl`` seconds (capped by kind); a TTL of 0 is not kept."""
        ttl = min(ttl, MAX_POSITIVE_TTL if kind == POSITIVE else MAX_NEGATIVE_TTL)
        if ttl <= 0 or self.limit <= 0:
            return
        key = (name, qtype)
        self._entries[key] = CacheEntry(kind, addresses, canonical, now_ns + ttl * 10**9)
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)
            self.evictions += 1

    def clear(self) -> None:
        """Forget everything (the servers changed)."""
        self._entries.clear()
