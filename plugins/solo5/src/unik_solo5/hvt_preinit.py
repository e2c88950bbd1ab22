"""Pre-initialisation of an hvt unikernel, inside the guest: the Python half of ``hvt/pymain.c``'s.

``unik build -t hvt`` boots the unikernel once under ``unik-hvt --save-snapshot``.  CPython
starts, :func:`prepare` imports what the generated ``main.py`` imports (the application,
unik, the devices' implementations) and what unik's runtime loads when it starts, and the
guest is saved at its snapshot point: before ``main.py`` reads its arguments or keys,
connects a device (no network, block or console device is open), reads a clock for later
or draws randomness it keeps.  ``unik run -t hvt`` restores that snapshot; the runtime (C)
renews its own generator's key and its clocks, then :func:`resumed` renews what CPython
holds from before the save and gives it this run's arguments, and ``main.py`` runs as in a
cold boot, its imports already done.

What the snapshot's memory holds and every restore of it shares, renewed here: the
``random`` module's shared generator (seeded from ``os.urandom`` at its import), OpenSSL's
DRBGs (reseeded when ``_ssl`` is loaded), unik's
generators (:func:`unik_entropy.forks.new_generation`), and whatever subscribed to
:data:`unik.lifecycle.RESUMED` at import.  Not renewed (the same in every restore of one
build, as in every fork of one process): CPython's string-hash seed, and glibc's stack
protector canary and pointer guard (taken from ``AT_RANDOM`` at start-up).  Module-level
code of the application runs once, at build time: a value it computes from the clock or
from randomness at import is the snapshot's in every run (compute it in ``start``).
"""

from __future__ import annotations

import ast
import builtins
import gc
import importlib
import os
import sys

#: Modules unik's runtime imports after ``main.py``'s imports, as it parses the arguments
#: (argparse, whose help formatter imports shutil) and refuses the host's sockets.
WARM = ("argparse", "shutil", "unik.hostsockets")


def prepare(main_file: str) -> None:
    """Run ``main_file``'s imports and definitions (not its ``__main__`` part), then settle for the save.

    The imports below its top level (its ``__main__`` part's, a function's) are made too;
    one that fails there is left for the run, as it would be in a cold boot.
    """
    with open(main_file, "rb") as f:
        source = f.read()
    code = compile(source, main_file, "exec")
    exec(code, {"__name__": "__hvt_preinit__", "__file__": main_file, "__builtins__": builtins})
    for name in (*_nested_imports(ast.parse(source)), *WARM):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    gc.freeze()  # what the imports made stays: later collections do not walk it


def _nested_imports(tree: ast.Module) -> list[str]:
    """The absolute imports of ``tree`` that are not at its top level."""
    top = {id(node) for node in tree.body}
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in top:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def resumed(argv: list[bytes]) -> None:
    """A guest restored from the snapshot: this run's arguments, and fresh generators (the module's docstring)."""
    sys.argv = [os.fsdecode(arg) for arg in argv]
    from unik.lifecycle import renew_generators  # os.urandom: the runtime's generator, rekeyed by this run

    renew_generators()
    forks = sys.modules.get("unik_entropy.forks")
    if forks is not None:
        forks.new_generation()
    if "unik.lifecycle" in sys.modules:
        _announce_resumed()


def _announce_resumed() -> None:
    """Announce :data:`unik.lifecycle.RESUMED` (generation 1) before any event loop exists."""
    from unik import lifecycle

    pending = lifecycle.announce_resumed(lifecycle.Resume(1))
    try:
        pending.send(None)
    except StopIteration:
        return
    pending.close()
    raise RuntimeError("a subscriber of unik.lifecycle.RESUMED waits on the event loop, which a pre-initialised "
                       "hvt unikernel has not started when it resumes: build with snapshots off")
