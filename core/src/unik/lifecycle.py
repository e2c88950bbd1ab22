"""The run-time life cycle of an artifact: events the runtime announces and libraries subscribe to.

MirageOS's runtime owns its life-cycle hooks and libraries register with it (the RNG
with ``at_enter_iter``) instead of importing one another; unik's runtime does the same:

* ``STARTED`` — every device is connected; the application is about to run
  (the generated ``main.py`` announces it).
* ``BEFORE_SEAL`` — a sandboxing target (spt) is about to seal the process: the last
  moment system calls beyond the allowlist work (load what is loaded lazily).
* ``SEALED`` — the process is sealed.
* ``SHUTDOWN_REQUESTED`` — a stop was asked for (SIGTERM or SIGINT; inside a VM the
  init turns the power button or Xen's shutdown request into SIGTERM): the
  application's task is cancelled next, then its devices disconnect in reverse order.
* ``READY`` — the application serves: it opened its first listening socket (unik-lib-tcpip's
  ``start_server``/``create_server``/``listen`` announce it; an application that serves
  otherwise calls ``lifecycle.announce(lifecycle.READY)`` itself).  A VM booted to be
  snapshotted (``unik snapshot``) is saved at this point.
* ``BEFORE_SNAPSHOT`` — the artifact's memory is about to be saved (a VM snapshot): write
  back what is cached (a FAT disk's dirty sectors), so that the disk holds it.
* ``RESUMED`` — the artifact runs again after its memory was saved and restored (a VM
  snapshot): what must not be shared between two copies of this memory is renewed — a
  random generator's state, a NIC's MAC address, ARP/NDP caches and DHCP leases, what a
  disk's reader cached.  :func:`resumed` says how (the host's MAC addresses for this
  instance).  Like ``BEFORE_SNAPSHOT`` it can happen many times.

Callbacks run in subscription order, synchronously, in the event loop's thread; one
that fails is reported on stderr and the others still run.  A callback may return an
awaitable (a FAT filesystem writing its dirty sectors back): :func:`announce_and_wait`,
which the VM snapshot agent uses, awaits those in turn; :func:`announce` drops them.

The runtime also carries *event timings*, as MirageOS's runtime hands the RNG the
times of its event loop's iterations: a library that sees events an attacker cannot
time exactly (frames arriving) ticks a named :class:`Timings` stream; a subscriber
(unik-lib-entropy's Fortuna, :func:`subscribe_timings`) receives the collected bytes.
Neither side imports the other.
"""

from __future__ import annotations

import _thread
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

STARTED = "started"
BEFORE_SEAL = "before_seal"
SEALED = "sealed"
SHUTDOWN_REQUESTED = "shutdown_requested"
READY = "ready"
BEFORE_SNAPSHOT = "before_snapshot"
RESUMED = "resumed"
EVENTS = (STARTED, BEFORE_SEAL, SEALED, SHUTDOWN_REQUESTED, READY, BEFORE_SNAPSHOT, RESUMED)
#: Events announced at most once per process (the others each time they happen).
ONCE = frozenset({STARTED, BEFORE_SEAL, SEALED, SHUTDOWN_REQUESTED, READY})

_subscribers: dict[str, list[Callable[[], object]]] = {event: [] for event in EVENTS}
_announced: set[str] = set()


def subscribe(event: str, callback: Callable[[], object]) -> None:
    """Call ``callback()`` when ``event`` is announced (one of :data:`EVENTS`)."""
    if event not in _subscribers:
        raise ValueError(f"unknown life-cycle event {event!r} (one of {', '.join(EVENTS)})")
    _subscribers[event].append(callback)


def unsubscribe(event: str, callback: Callable[[], object]) -> None:
    """Undo one :func:`subscribe` of ``callback`` to ``event`` (nothing if it is not subscribed)."""
    callbacks = _subscribers.get(event, [])
    if callback in callbacks:
        callbacks.remove(callback)



#: Bytes of fresh input :func:`renew_generators` gives OpenSSL.
RENEW_BYTES = 48


def renew_generators() -> None:
    """Renew the generators of this process that a restored memory image holds, from ``os.urandom``.

    Call it once ``os.urandom`` is fresh (a VM guest's kernel reseeded, hvt's runtime
    rekeyed by this run's monitor), before :data:`RESUMED`.  OpenSSL's DRBGs, where
    ``_ssl`` is loaded (TLS handshakes' randoms and key shares), get fresh input
    (``RAND_add``: its primary generator reseeds and the per-thread ones follow it); the
    ``random`` module's shared Mersenne Twister is seeded again.  ``secrets`` reads
    ``os.urandom``.  The string hash seed stays the snapshot's: dictionaries' order is
    shared, not a secret.
    """
    import os

    ssl = sys.modules.get("_ssl")
    if ssl is not None:
        ssl.RAND_add(os.urandom(RENEW_BYTES), float(RENEW_BYTES))
    random = sys.modules.get("random")
    if random is not None:
        random.seed()


class Resume(NamedTuple):
    """What the host said when it restored this memory (:data:`RESUMED`)."""

    #: How many times this memory was restored in this instance's line (1 for the first).
    generation: int = 1
    #: The new MAC address of each network interface, by its address in the snapshot
    #: (``"52:54:00:12:34:56"``, lower case): the guest's kernel interface has it already.
    macs: Mapping[str, str] = {}


_resume = Resume(0)


def resumed() -> Resume:
    """How the last :data:`RESUMED` came (generation 0: never restored)."""
    return _resume


async def announce_resumed(resume: Resume) -> None:
    """Record ``resume`` (:func:`resumed`), then announce :data:`RESUMED` and await its subscribers."""
    global _resume
    _resume = resume
    await announce_and_wait(RESUMED)


def announce(event: str) -> None:
    """Announce ``event``: run its subscribers (once per process, but ``RESUMED`` each time)."""
    for pending in _run(event):
        close = getattr(pending, "close", None)
        if close is not None:  # a coroutine nobody awaits: closed, not left to warn
            close()


async def announce_and_wait(event: str) -> None:
    """:func:`announce` ``event`` and await, in order, the awaitables its subscribers return."""
    for pending in _run(event):
        try:
            await pending
        except Exception:  # noqa: BLE001 - as in announce
            _failed(event)


def _run(event: str) -> list[Awaitable[object]]:
    """Run ``event``'s subscribers; the awaitables they returned."""
    if event not in _subscribers:
        raise ValueError(f"unknown life-cycle event {event!r} (one of {', '.join(EVENTS)})")
    if event in _announced and event in ONCE:
        return []
    _announced.add(event)
    pending: list[Awaitable[object]] = []
    for callback in list(_subscribers[event]):
        try:
            result = callback()
        except Exception:  # noqa: BLE001 - one subscriber's failure must not stop the others
            _failed(event)
            continue
        if hasattr(result, "__await__"):
            pending.append(result)  # type: ignore[arg-type]
    return pending


def _failed(event: str) -> None:
    print(f"unik: a {event} subscriber failed:", file=sys.stderr)
    traceback.print_exc()


def announced(event: str) -> bool:
    """Whether ``event`` was announced in this process (``shutdown_requested``: a stop is under way)."""
    return event in _announced


def reset() -> None:
    """Forget subscribers and announcements (for tests); timing streams and their subscribers stay."""
    global _resume
    for callbacks in _subscribers.values():
        callbacks.clear()
    _announced.clear()
    _resume = Resume(0)


# -- event timings -----------------------------------------------------------------------

#: Bytes a :class:`Timings` stream collects before it hands them over (16 ticks).
TIMING_BYTES = 32

TimingSink = Callable[["Timings", bytes], object]
_sinks: list[TimingSink] = []
_streams: dict[str, Timings] = {}
_streams_lock = _thread.allocate_lock()


class Timings:
    """A named stream of event times (get it with :func:`timings`); :meth:`tick` on each event.

    A tick keeps the low 16 bits of ``perf_counter_ns`` (xor a value such as a frame's
    length); every 16 ticks the 32 bytes go to every subscriber.  With no subscriber a
    tick returns at once and keeps nothing.
    """

    __slots__ = ("_buf", "events", "index", "name")

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        #: Order of creation in this process (0, 1, ...): a subscriber's compact id for the stream.
        self.index = index
        self._buf = bytearray()
        #: How many batches of :data:`TIMING_BYTES` were handed over.
        self.events = 0

    def tick(self, value: int = 0) -> None:
        """Record that an event happened now (``value`` is mixed into the time)."""
        if not _sinks:
            return
        self._buf += ((time.perf_counter_ns() ^ value) & 0xFFFF).to_bytes(2, "little")
        if len(self._buf) >= TIMING_BYTES:
            data = bytes(self._buf)
            self._buf.clear()
            self.events += 1
            for sink in list(_sinks):
                sink(self, data)

    def __repr__(self) -> str:
        return f"<Timings {self.name} index={self.index} events={self.events}>"


def timings(name: str) -> Timings:
    """The event-timing stream called ``name`` (``"tcpip.rx"``): the same object for the same name."""
    with _streams_lock:
        found = _streams.get(name)
        if found is None:
            found = _streams[name] = Timings(name, len(_streams))
        return found


def subscribe_timings(sink: TimingSink) -> None:
    """Call ``sink(stream, data)`` with every stream's collected timings from now on (once per sink)."""
    if sink not in _sinks:
        _sinks.append(sink)


def unsubscribe_timings(sink: TimingSink) -> None:
    """Stop calling ``sink``."""
    if sink in _sinks:
        _sinks.remove(sink)
