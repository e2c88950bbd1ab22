"""The neighbour cache of RFC 4861 7.3 with its reachability states, bounded.

INCOMPLETE entries hold the packets waiting for resolution (a bounded queue) and send
multicast solicitations; REACHABLE turns STALE after the reachable time; sending to a
STALE neighbour starts DELAY, then PROBE with unicast solicitations, and a neighbour that
never answers is removed.  Entries are created only by our own need to send, by a
solicitation addressed to us that carries the sender's link-layer address, or by a
router advertisement (RFC 4861 7.2.3, 6.3.4); an unsolicited advertisement for an
unknown neighbour is ignored (7.2.5), so a flood of spoofed NDP cannot grow the table
past ``size`` (least recently used entries go first).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

from unik.devices import TxOffload

#: A frame waiting to be sent, with its offload instructions.
Queued = tuple[bytearray, TxOffload | None]

INCOMPLETE, REACHABLE, STALE, DELAY, PROBE = "incomplete", "reachable", "stale", "delay", "probe"
_S = 10**9
# RFC 4861 10: protocol constants.
MAX_MULTICAST_SOLICIT = 3
MAX_UNICAST_SOLICIT = 3
DELAY_FIRST_PROBE_NS = 5 * _S


class Neighbour:
    """One entry: its link-layer address, state and what waits for it."""

    __slots__ = ("deadline_ns", "is_router", "mac", "probes", "queue", "state")

    def __init__(self, state: str, mac: bytes | None, deadline_ns: int) -> None:
        self.state = state
        self.mac = mac
        #: When the state's timer fires (retransmission, reachable time, delay).
        self.deadline_ns = deadline_ns
        self.probes = 0
        self.is_router = False
        self.queue: list[Queued] = []


class NeighbourCache:
    """IPv6 neighbours of one link (RFC 4861 7.3.2), at most ``size`` of them."""

    def __init__(self, stats: Counter[str], *, size: int = 256, max_queued: int = 64, max_incomplete: int = 64,
                 reachable_ns: int = 30 * _S, retrans_ns: int = _S) -> None:
        self.stats = stats
        self.size, self.max_queued, self.max_incomplete = size, max_queued, max_incomplete
        self.reachable_ns, self.retrans_ns = reachable_ns, retrans_ns
        self.entries: OrderedDict[bytes, Neighbour] = OrderedDict()
        self.incomplete = 0
        #: Moves whenever an entry changes its address or leaves (see ``ArpCache.generation``).
        self.generation = 0

    def resolve(self, ip: bytes, now_ns: int) -> bytes | None:
        """The link-layer address to send to ``ip`` now (``None``: unknown; :meth:`enqueue` the frame).

        Sending to a STALE neighbour starts DELAY (RFC 4861 7.3.3).
        """
        entry = self.entries.get(ip)
        if entry is None or entry.mac is None:
            return None
        if entry.state == REACHABLE:
            if now_ns < entry.deadline_ns:
                return entry.mac
            entry.state = STALE
        if entry.state == STALE:
            entry.state, entry.deadline_ns = DELAY, now_ns + DELAY_FIRST_PROBE_NS
        return entry.mac

    def enqueue(self, ip: bytes, frame: Queued, now_ns: int, solicit: Callable[[bytes, bytes | None], None]) -> None:
        """Hold ``frame`` until ``ip`` resolves; a new INCOMPLETE entry solicits at once."""
        entry = self.entries.get(ip)
        if entry is None:
            if self.incomplete >= self.max_incomplete:
                self.stats["ndp.incomplete_full"] += 1
                return
            entry = self._insert(ip, Neighbour(INCOMPLETE, None, now_ns + self.retrans_ns))
            self.incomplete += 1
            entry.probes = 1
            self.stats["ndp.solicits_sent"] += 1
            solicit(ip, None)
        if len(entry.queue) >= self.max_queued:
            entry.queue.pop(0)  # the oldest are the likeliest to be retransmitted anyway
            self.stats["ndp.queue_full"] += 1
        entry.queue.append(frame)

    def _insert(self, ip: bytes, entry: Neighbour) -> Neighbour:
        while len(self.entries) >= self.size:
            _old_ip, old = self.entries.popitem(last=False)
            self.generation += 1
            self.stats["ndp.evicted"] += 1
            if old.state == INCOMPLETE:
                self.incomplete -= 1
        self.entries[ip] = entry
        return entry

    def learn(self, ip: bytes, mac: bytes, now_ns: int, *, create: bool) -> list[Queued]:
        """A link-layer address from a solicitation or router advertisement (RFC 4861 7.2.3, 6.3.4).

        A new or changed address makes the entry STALE; ``create`` allows a new entry.
        Returns what waited for it.
        """
        entry = self.entries.get(ip)
        if entry is None:
            if not create:
                return []
            self._insert(ip, Neighbour(STALE, mac, 0))
            return []
        return self._update(entry, mac, STALE if entry.mac != mac else entry.state, now_ns)

    def advertised(self, ip: bytes, mac: bytes | None, now_ns: int, *, solicited: bool, override: bool,
                   router: bool) -> list[Queued]:
        """A neighbour advertisement (RFC 4861 7.2.5): update only an existing entry."""
        entry = self.entries.get(ip)
        if entry is None:
            self.stats["ndp.unsolicited_na"] += 1
            return []
        entry.is_router = router
        if entry.state == INCOMPLETE:
            if mac is None:
                self.stats["ndp.na_without_lla"] += 1
                return []
            return self._update(entry, mac, REACHABLE if solicited else STALE, now_ns)
        changed = mac is not None and mac != entry.mac
        if not override and changed:
            # 7.2.5: a different address without Override does not replace ours.
            if entry.state == REACHABLE:
                entry.state = STALE
            self.stats["ndp.na_no_override"] += 1
            return []
        if solicited:
            return self._update(entry, mac or entry.mac, REACHABLE, now_ns)
        if changed:
            return self._update(entry, mac or entry.mac, STALE, now_ns)
        return []

    def _update(self, entry: Neighbour, mac: bytes | None, state: str, now_ns: int) -> list[Queued]:
        if entry.state == INCOMPLETE:
            self.incomplete -= 1
        if entry.mac != mac:
            self.generation += 1
        entry.mac, entry.state, entry.probes = mac, state, 0
        entry.deadline_ns = now_ns + self.reachable_ns if state == REACHABLE else 0
        queued, entry.queue = entry.queue, []
        return queued

    def confirm(self, ip: bytes, now_ns: int) -> None:
        """Reachability confirmed by an upper layer (RFC 4861 7.3.1: forward progress)."""
        entry = self.entries.get(ip)
        if entry is not None and entry.mac is not None:
            entry.state, entry.deadline_ns, entry.probes = REACHABLE, now_ns + self.reachable_ns, 0

    def forget(self, ip: bytes) -> None:
        """Remove ``ip`` (a router that left, an address of ours)."""
        entry = self.entries.pop(ip, None)
        self.generation += 1
        if entry is not None and entry.state == INCOMPLETE:
            self.incomplete -= 1

    def tick(self, now_ns: int, solicit: Callable[[bytes, bytes | None], None]) -> None:
        """Retransmit solicitations, move DELAY to PROBE, give up on silent neighbours (RFC 4861 7.3.3)."""
        for ip, entry in list(self.entries.items()):
            if entry.state in (REACHABLE, STALE) or now_ns < entry.deadline_ns:
                continue
            if entry.state == DELAY:
                entry.state, entry.probes = PROBE, 0
            limit = MAX_MULTICAST_SOLICIT if entry.state == INCOMPLETE else MAX_UNICAST_SOLICIT
            if entry.probes >= limit:
                self.forget(ip)
                self.stats["ndp.unreachable"] += 1
                self.stats["ndp.unresolved_dropped"] += len(entry.queue)
                continue
            entry.probes += 1
            entry.deadline_ns = now_ns + self.retrans_ns
            self.stats["ndp.solicits_sent"] += 1
            # INCOMPLETE solicits by multicast, PROBE by unicast to the cached address.
            solicit(ip, entry.mac if entry.state == PROBE else None)
