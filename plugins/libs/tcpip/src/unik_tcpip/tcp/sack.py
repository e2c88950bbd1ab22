"""The sender's SACK scoreboard (RFC 6675 2): what the peer reported holding above SND.UNA."""

from __future__ import annotations

from .seq import MASK, seq_diff, seq_lt


class Scoreboard:
    """Sorted, merged ``(left, right)`` sequence ranges above SND.UNA, at most 64."""

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def clear(self) -> None:
        """Forget everything (RFC 2018 8: after a timeout SACK must not steer retransmission)."""
        self.ranges = []

    def update(self, blocks: tuple[tuple[int, int], ...], una: int, snd_max: int) -> None:
        """Merge the blocks of one ACK (RFC 6675 5); D-SACKs and bogus blocks are ignored."""
        limit = seq_diff(snd_max, una)
        offsets = [(seq_diff(s, una), seq_diff(e, una)) for s, e in self.ranges]
        for left, right in blocks:
            lo, hi = seq_diff(left, una), seq_diff(right, una)
            if 0 < lo < hi <= limit:  # RFC 2883 D-SACKs lie below SND.UNA
                offsets.append((lo, hi))
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted((max(lo, 0), hi) for lo, hi in offsets if hi > 0):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.ranges = [((una + lo) & MASK, (una + hi) & MASK) for lo, hi in merged[:64]]

    def prune(self, ack: int) -> None:
        """Drop what a cumulative ACK up to ``ack`` covers."""
        self.ranges = [(s if seq_lt(ack, s) else ack, e) for s, e in self.ranges if seq_lt(ack, e)]

    def held(self) -> int:
        """The bytes SACKed."""
        return sum(seq_diff(e, s) for s, e in self.ranges)

    def next_hole(self, start: int, una: int, mss: int) -> tuple[int, int] | None:
        """RFC 6675 4 NextSeg rule 1: the first hole at or after offset ``start`` below a SACKed range.

        ``(offset above una, length up to mss)``, or ``None`` when no hole lies below the
        highest SACKed byte.
        """
        for left, right in self.ranges:
            lo, hi = seq_diff(left, una), seq_diff(right, una)
            if start < lo:
                return start, min(mss, lo - start)
            start = max(start, hi)
        return None
