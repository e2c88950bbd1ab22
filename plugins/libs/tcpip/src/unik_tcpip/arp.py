"""The ARP cache (RFC 826): bounded, ageing, with rate-limited requests.

Spoofing is made harder than plain RFC 826 merging allows: a new entry is created only
when a packet is addressed to us (RFC 826 "Packet Reception": "?Am I the target
protocol address?") or answers a request we sent; an unsolicited reply for an address
we never asked about is counted and ignored.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

from unik.devices import TxOffload

from .wire import arp as wire_arp

#: A frame waiting to be sent, with its offload instructions.
Queued = tuple[bytearray, TxOffload | None]


class _Pending:
    """Packets waiting for an address to be resolved."""

    # A plain class, not a dataclass: those compile generated code as the stack is imported.
    __slots__ = ("frames", "last_request_ns", "requests")

    def __init__(self) -> None:
        self.frames: list[Queued] = []
        self.last_request_ns = 0
        self.requests = 0


class ArpCache:
    """IPv4 to MAC address mappings with a bounded queue of unresolved packets."""

    def __init__(self, stats: Counter[str], *, size: int = 256, ttl_ns: int = 60 * 10**9,
                 retry_ns: int = 10**9, max_requests: int = 3, max_pending: int = 64,
                 max_queued: int = 128) -> None:
        self.stats = stats
        self.size, self.ttl_ns, self.retry_ns = size, ttl_ns, retry_ns
        self.max_requests, self.max_pending, self.max_queued = max_requests, max_pending, max_queued
        self.entries: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()
        self.pending: dict[bytes, _Pending] = {}
        #: Moves whenever an entry changes its address or leaves: what was read from the
        #: table before (a connection's link header) is to be read again.
        self.generation = 0

    def lookup(self, ip: bytes, now_ns: int) -> bytes | None:
        """The MAC address of ``ip``, if known and fresh."""
        entry = self.entries.get(ip)
        if entry is None:
            return None
        if entry[1] <= now_ns:
            del self.entries[ip]
            self.generation += 1
            self.stats["arp.expired"] += 1
            return None
        return entry[0]

    def insert(self, ip: bytes, mac: bytes, now_ns: int) -> list[Queued]:
        """Record ``ip -> mac``; return the packets that were waiting for it."""
        old = self.entries.get(ip)
        if old is not None:
            self.entries.move_to_end(ip)
            if old[0] != mac:
                self.generation += 1
        elif len(self.entries) >= self.size:
            self.entries.popitem(last=False)  # evict the least recently refreshed
            self.generation += 1
            self.stats["arp.evicted"] += 1
        self.entries[ip] = (mac, now_ns + self.ttl_ns)
        pending = self.pending.pop(ip, None)
        return pending.frames if pending else []

    def update_existing(self, ip: bytes, mac: bytes, now_ns: int) -> bool:
        """RFC 826 merge: refresh ``ip`` if it is already in the table."""
        if ip in self.entries:
            self.insert(ip, mac, now_ns)
            return True
        return False

    def enqueue(self, ip: bytes, frame: Queued, now_ns: int, request: Callable[[bytes], None]) -> None:
        """Hold ``frame`` until ``ip`` resolves, sending a request unless one was sent lately."""
        pending = self.pending.get(ip)
        if pending is None:
            if len(self.pending) >= self.max_pending:
                self.stats["arp.pending_full"] += 1
                return
            pending = self.pending[ip] = _Pending()
        if len(pending.frames) >= self.max_queued:
            # Keep the newest frames: the oldest are the likeliest to be retransmitted anyway.
            pending.frames.pop(0)
            self.stats["arp.queue_full"] += 1
        pending.frames.append(frame)
        if pending.requests == 0 or now_ns - pending.last_request_ns >= self.retry_ns:
            self._request(ip, pending, now_ns, request)

    def _request(self, ip: bytes, pending: _Pending, now_ns: int, request: Callable[[bytes], None]) -> None:
        pending.requests += 1
        pending.last_request_ns = now_ns
        self.stats["arp.requests_sent"] += 1
        request(ip)

    def tick(self, now_ns: int, request: Callable[[bytes], None]) -> None:
        """Retry pending requests at most once per ``retry_ns``; give up after ``max_requests``."""
        for ip, pending in list(self.pending.items()):
            if now_ns - pending.last_request_ns < self.retry_ns:
                continue
            if pending.requests >= self.max_requests:
                del self.pending[ip]
                self.stats["arp.unresolved"] += len(pending.frames)
            else:
                self._request(ip, pending, now_ns, request)
        for ip in [ip for ip, (_mac, exp) in self.entries.items() if exp <= now_ns]:
            del self.entries[ip]
            self.generation += 1
            self.stats["arp.expired"] += 1


def request_packet(mac: bytes, spa: bytes, tpa: bytes) -> wire_arp.ArpPacket:
    """An ARP request for ``tpa`` from ``mac``/``spa`` (gratuitous when ``spa == tpa``)."""
    return wire_arp.ArpPacket(wire_arp.REQUEST, mac, spa, bytes(6), tpa)
