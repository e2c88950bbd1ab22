"""The send buffer and the receive queue of one connection.

The send buffer keeps every byte from the oldest unacknowledged one (its sequence
number is :attr:`SendBuffer.seq`) until a cumulative ACK covers it; retransmissions
read from it.  The receive queue holds in-order bytes the application has not taken:
while they wait the advertised window shrinks by as much (RFC 9293 3.8.6).
"""

from __future__ import annotations

from .seq import MASK, seq_diff


class SendBuffer:
    """Bytes from sequence number :attr:`seq` on, acknowledged or not."""

    __slots__ = ("data", "seq")

    def __init__(self, seq: int = 0) -> None:
        self.data = bytearray()
        self.seq = seq

    def __len__(self) -> int:
        return len(self.data)

    def acknowledge(self, ack: int) -> int:
        """Drop what precedes ``ack``; the number of bytes dropped (a FIN takes none)."""
        drop = min(max(seq_diff(ack, self.seq), 0), len(self.data))
        if drop:
            del self.data[:drop]
            self.seq = (self.seq + drop) & MASK
        return drop

    def offset(self, seq: int) -> int:
        """Where ``seq`` lies in the buffer (negative: already acknowledged)."""
        return seq_diff(seq, self.seq)

    @property
    def end(self) -> int:
        """The sequence number after the last byte buffered."""
        return (self.seq + len(self.data)) & MASK


class ReceiveQueue:
    """In-order bytes for the application: ``ready`` to hand over, ``held`` while it does not read.

    Only :attr:`held` counts against the window: bytes handed to a reading application are
    consumed at once, as a socket's ``recv`` would.
    """

    __slots__ = ("capacity", "held", "ready")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = bytearray()
        self.ready: list[bytes] = []

    def window(self) -> int:
        """The free receive buffer, in bytes."""
        return max(0, self.capacity - len(self.held))

    def take(self) -> list[bytes]:
        """What is ready for the application, in order; the queue forgets it."""
        ready, self.ready = self.ready, []
        return ready

    def take_held(self) -> bytes:
        """Everything held (reading resumed); the window reopens."""
        data, self.held = bytes(self.held), bytearray()
        return data
