"""The connection states of RFC 9293 3.3.2 and the sets of them the rules name."""

from __future__ import annotations

import enum


class State(enum.Enum):
    """The connection states of RFC 9293 3.3.2."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    # Members are singletons compared by identity: hash them by identity too (C-level),
    # not by name as Enum does in Python; ``state in SYNCHRONIZED`` runs on every segment.
    __hash__ = object.__hash__


#: States in which the connection is synchronized (RFC 9293 3.5).
SYNCHRONIZED = frozenset({
    State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT, State.CLOSING,
    State.LAST_ACK, State.TIME_WAIT,
})
#: States in which received data is accepted (RFC 9293 3.10.7.4, seventh step).
RECEIVING = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})
#: States in which the handshake is under way (its retransmissions are SYNs).
OPENING = frozenset({State.SYN_SENT, State.SYN_RECEIVED})
