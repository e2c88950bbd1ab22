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

Callbacks run in subscription order, synchronously, in the event loop's thread; one
that fails is reported on stderr and the others still run.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

STARTED = "started"
BEFORE_SEAL = "before_seal"
SEALED = "sealed"
SHUTDOWN_REQUESTED = "shutdown_requested"
EVENTS = (STARTED, BEFORE_SEAL, SEALED, SHUTDOWN_REQUESTED)

_subscribers: dict[str, list[Callable[[], object]]] = {event: [] for event in EVENTS}
_announced: set[str] = set()


def subscribe(event: str, callback: Callable[[], object]) -> None:
    """Call ``callback()`` when ``event`` is announced (one of :data:`EVENTS`)."""
    if event not in _subscribers:
        raise ValueError(f"unknown life-cycle event {event!r} (one of {', '.join(EVENTS)})")
    _subscribers[event].append(callback)


def announce(event: str) -> None:
    """Announce ``event``: run its subscribers (each once per process and event)."""
    if event not in _subscribers:
        raise ValueError(f"unknown life-cycle event {event!r} (one of {', '.join(EVENTS)})")
    if event in _announced:
        return
    _announced.add(event)
    for callback in list(_subscribers[event]):
        try:
            callback()
        except Exception:  # noqa: BLE001 - one subscriber's failure must not stop the others
            print(f"unik: a {event} subscriber failed:", file=sys.stderr)
            traceback.print_exc()


def announced(event: str) -> bool:
    """Whether ``event`` was announced in this process (``shutdown_requested``: a stop is under way)."""
    return event in _announced


def reset() -> None:
    """Forget subscribers and announcements (for tests)."""
    for callbacks in _subscribers.values():
        callbacks.clear()
    _announced.clear()
