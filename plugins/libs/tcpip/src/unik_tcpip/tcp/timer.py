"""A connection's timers: one deadline per :class:`Timer`, in nanoseconds (0: off).

The connection never sleeps: its driver asks :attr:`TimerSet.earliest` when to call
back and then hands it the time; :meth:`TimerSet.expire` says which timers ran out.
"""

from __future__ import annotations

import enum


class Timer(enum.Enum):
    """The timers of RFC 9293 3.8 and its companions, in the order they are served."""

    TIME_WAIT = "time_wait"  # RFC 9293 3.3.2: 2 MSL, then CLOSED
    FIN_WAIT_2 = "fin_wait_2"  # the peer's FIN is overdue after the application closed
    RTO = "rto"  # RFC 6298: retransmission
    RACK = "rack"  # RFC 8985 6.3: the reordering timer (a segment not yet waited on long enough)
    PROBE = "probe"  # RFC 8985 7: a tail loss probe
    PERSIST = "persist"  # RFC 9293 3.8.6.1: zero-window probes
    DELAYED_ACK = "delayed_ack"  # RFC 9293 3.8.6.3
    KEEPALIVE = "keepalive"  # RFC 9293 3.8.4

    __hash__ = object.__hash__


#: Each timer with its attribute name, in service order (an enum's ``.value`` is a descriptor call).
_ORDER = tuple((timer, timer.value) for timer in Timer)


class TimerSet:
    """The deadlines of one connection, as attributes named by :class:`Timer` values."""

    __slots__ = ("delayed_ack", "fin_wait_2", "keepalive", "persist", "probe", "rack", "rto", "time_wait")

    def __init__(self) -> None:
        self.time_wait = 0
        self.fin_wait_2 = 0
        self.rto = 0
        self.rack = 0
        self.probe = 0
        self.persist = 0
        self.delayed_ack = 0
        self.keepalive = 0

    def get(self, timer: Timer) -> int:
        """The deadline of ``timer`` (0: off)."""
        return int(getattr(self, timer.value))

    def expire(self, now: int) -> list[Timer]:
        """The timers due at ``now``, in service order; each is switched off."""
        due = []
        for timer, name in _ORDER:
            at = getattr(self, name)
            if at and at <= now:
                setattr(self, name, 0)
                due.append(timer)
        return due

    def cancel_all(self) -> None:
        """Switch every timer off (the connection is CLOSED)."""
        self.time_wait = self.fin_wait_2 = self.rto = self.rack = self.probe = self.persist = self.delayed_ack = 0
        self.keepalive = 0

    def pending(self) -> list[int]:
        """Every deadline that is on."""
        return [at for at in (self.time_wait, self.fin_wait_2, self.rto, self.rack, self.probe, self.persist,
                              self.delayed_ack, self.keepalive) if at]
