"""Event timing: the arrival times of other libraries' events go into Fortuna's pools.

Libraries do not import this module: they tick a stream of the runtime's
(:func:`unik.lifecycle.timings`), as unik-lib-tcpip does for each batch of frames::

    from unik import lifecycle
    rx_timing = lifecycle.timings("tcpip.rx")
    ...
    rx_timing.tick(len(frame))           # a frame batch arrived

While a Fortuna device is connected (:func:`attach`) this module subscribes to those
timings (:func:`unik.lifecycle.subscribe_timings`): every 16 ticks of a stream the 32
collected bytes go as one event into the pools of every attached generator, from source
id ``16 + the stream's index``.  Nothing is credited (Fortuna needs no estimate), so
timings an attacker can observe cannot make the generator weaker; the ones it cannot
observe make it stronger.  With no generator attached a tick returns at once.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from unik import lifecycle
from unik.lifecycle import Timings as EventSource

from .sources import EVENT_IDS

if TYPE_CHECKING:
    from .fortuna import Fortuna

__all__ = ["EVENT_BYTES", "EventSource", "attach", "detach", "source"]

_SINKS: weakref.WeakSet[Fortuna] = weakref.WeakSet()
#: Bytes collected before they are added to the pools (one event).
EVENT_BYTES = lifecycle.TIMING_BYTES
#: Source ids run from EVENT_IDS to 255.
_MAX_INDEX = 255 - EVENT_IDS


def source(name: str) -> EventSource:
    """The runtime's timing stream called ``name`` (see :func:`unik.lifecycle.timings`)."""
    found = lifecycle.timings(name)
    if found.index > _MAX_INDEX:
        raise ValueError(f"too many event sources (at most {_MAX_INDEX + 1})")
    return found


def _feed(stream: EventSource, data: bytes) -> None:
    if stream.index <= _MAX_INDEX:
        for rng in list(_SINKS):
            rng.add(EVENT_IDS + stream.index, data)


def attach(rng: Fortuna) -> None:
    """Send events to ``rng`` from now on."""
    _SINKS.add(rng)
    lifecycle.subscribe_timings(_feed)


def detach(rng: Fortuna) -> None:
    """Stop sending events to ``rng``."""
    _SINKS.discard(rng)
    if not _SINKS:
        lifecycle.unsubscribe_timings(_feed)
