"""Out-of-order receive storage and the SACK blocks that describe it (RFC 2018).

Segments that arrive beyond RCV.NXT wait here, bounded by the receive buffer, until
the hole before them fills; the blocks they form are what the receiver's SACK option
reports, the one holding the latest segment first (RFC 2018 4).
"""

from __future__ import annotations

from .seq import MASK, seq_diff, seq_le, seq_lt


class Assembler:
    """Data held beyond RCV.NXT, as ``(seq, bytes)`` sorted by distance from RCV.NXT."""

    __slots__ = ("capacity", "held", "recent", "segments")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.segments: list[tuple[int, bytes]] = []
        #: Bytes held (overlaps counted twice: the bound is on memory).
        self.held = 0
        #: The range of the latest segment stored (the first SACK block reports it).
        self.recent: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.segments)

    def add(self, seq: int, data: bytes, rcv_nxt: int) -> bool:
        """Keep ``data`` starting at ``seq``; ``False`` when it does not fit the capacity."""
        end = (seq + len(data)) & MASK
        self.recent = (seq, end)
        if self.held + len(data) > self.capacity:
            return False  # overlapping junk cannot grow memory
        for start, have in self.segments:
            if seq_le(start, seq) and seq_le(end, (start + len(have)) & MASK):
                return True  # a duplicate of what is held
        self.segments.append((seq, data))
        self.segments.sort(key=lambda item: seq_diff(item[0], rcv_nxt))
        self.held += len(data)
        return True

    def pop_ready(self, rcv_nxt: int) -> memoryview | None:
        """The held bytes that continue at ``rcv_nxt`` (the first such piece), or ``None``."""
        while self.segments:
            start, data = self.segments[0]
            if seq_lt(rcv_nxt, start):
                return None
            self.segments.pop(0)
            self.held -= len(data)
            skip = seq_diff(rcv_nxt, start)
            if skip < len(data):
                return memoryview(data)[skip:]
        return None

    def sack_blocks(self, limit: int) -> tuple[tuple[int, int], ...]:
        """RFC 2018 4: the block with the latest segment first, then the others, at most ``limit``."""
        blocks: list[tuple[int, int]] = []
        for start, data in self.segments:
            end = (start + len(data)) & MASK
            if blocks and blocks[-1][1] == start:
                blocks[-1] = (blocks[-1][0], end)
            else:
                blocks.append((start, end))
        recent = self.recent
        first = [b for b in blocks if recent and seq_le(b[0], recent[0]) and seq_le(recent[1], b[1])]
        rest = [b for b in reversed(blocks) if b not in first]
        return tuple((first + rest)[:limit])
