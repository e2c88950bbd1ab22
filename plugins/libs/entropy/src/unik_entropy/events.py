"""Event timing: other libraries feed the arrival times of their events into Fortuna.

unik-lib-tcpip (or any library) asks once for a source and ticks it per event::

    try:
        from unik_entropy import events
        rx_timing = events.source("tcpip.rx")
    except ImportError:
        rx_timing = None
    ...
    if rx_timing is not None:
        rx_timing.tick()                 # a frame batch arrived

A tick records the low 16 bits of ``perf_counter_ns`` (xor an optional value, such as
a frame's length); every 16 ticks the 32 collected bytes go as one event into the
pools of every connected Fortuna device.  Nothing is credited (Fortuna needs no
estimate), so timings an attacker can observe cannot make the generator weaker; the
ones it cannot observe make it stronger.  With no device connected a tick returns at
once and keeps nothing.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING

from .sources import EVENT_IDS

if TYPE_CHECKING:
    from .fortuna import Fortuna

_SINKS: weakref.WeakSet[Fortuna] = weakref.WeakSet()
_SOURCES: dict[str, EventSource] = {}
_LOCK = threading.Lock()
#: Bytes collected before they are added to the pools (one event).
EVENT_BYTES = 32


class EventSource:
    """One stream of events; get it with :func:`source`."""

    __slots__ = ("_buf", "events", "name", "source_id")

    def __init__(self, name: str, source_id: int) -> None:
        self.name = name
        self.source_id = source_id
        self._buf = bytearray()
        self.events = 0

    def tick(self, value: int = 0) -> None:
        """Record that an event happened now (``value`` is mixed into the timestamp)."""
        if not _SINKS:
            return
        self._buf += ((time.perf_counter_ns() ^ value) & 0xFFFF).to_bytes(2, "little")
        if len(self._buf) >= EVENT_BYTES:
            data = bytes(self._buf)
            self._buf.clear()
            self.events += 1
            for rng in list(_SINKS):
                rng.add(self.source_id, data)


def source(name: str) -> EventSource:
    """The event source called ``name`` (the same object for the same name)."""
    with _LOCK:
        found = _SOURCES.get(name)
        if found is None:
            source_id = EVENT_IDS + len(_SOURCES)
            if source_id > 255:
                raise ValueError("too many event sources (at most 240)")
            found = _SOURCES[name] = EventSource(name, source_id)
        return found


def attach(rng: Fortuna) -> None:
    """Send events to ``rng`` from now on."""
    _SINKS.add(rng)


def detach(rng: Fortuna) -> None:
    """Stop sending events to ``rng``."""
    _SINKS.discard(rng)
