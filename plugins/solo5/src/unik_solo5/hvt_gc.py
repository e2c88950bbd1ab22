"""hvt's start-up module (the generated ``main.py`` imports it first): CPython's cyclic garbage collector.

A cold boot runs ``main.py`` with the collector off (``hvt/pymain.c``): the imports that
start an application make objects that live as long as the interpreter, and scanning them
is wasted work (natively, examples/hello's imports take 31 ms of CPU with it on and 28 ms
with it off: 36 collections).  When the runtime announces ``STARTED`` (every device is
connected, the application is about to run) the collector goes back on, with everything
made until then frozen (:func:`gc.freeze`: never scanned again, so the first full
collections of a served request do not walk the whole interpreter), as CPython advises
for a server that preloads before it forks.  A cycle that became garbage during start-up
stays in memory.
"""

from __future__ import annotations

import gc

from unik import lifecycle


def started() -> None:
    """Turn the collector back on, start-up's objects frozen."""
    gc.freeze()
    gc.enable()


lifecycle.subscribe(lifecycle.STARTED, started)
