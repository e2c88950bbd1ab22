"""Measure the least ``--mem`` an application's VM image boots in, by bisection.

Usage (in a configured and built application directory, e.g. a copy of examples/http)::

    python tools/memfloor.py --ready "serving on" [--low 48] [--high 256] -- --accel tcg --net service=tap0

Each step runs ``unik run --mem NM`` with the arguments after ``--`` and waits (bounded)
for a console line starting with ``--ready`` (default: any line the application prints
after the init's); the image's floor is the smallest size that gets there.  The
figures in :mod:`unik_vmimage.memory` came from this; the runs set
``UNIK_MEM_FLOOR_CHECK=0``, so that ``unik run`` boots below the floor it computes.
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

UNIK = str(Path(sys.executable).with_name("unik"))


def boots(mem: int, ready: str, args: list[str], timeout: float) -> bool:
    """Whether ``unik run --mem {mem}M`` reaches the ``ready`` line within ``timeout`` seconds."""
    proc = subprocess.Popen([UNIK, "run", "--mem", f"{mem}M", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, UNIK_MEM_FLOOR_CHECK="0"))
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    ok = False
    try:
        while time.monotonic() < deadline and not ok:
            if not sel.select(1.0):
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                break
            ok = line.startswith(ready) and not line.startswith(("unik:", "unik-init:", "["))
    finally:
        proc.kill()
        proc.wait()
    print(f"--mem {mem}M: {'boots' if ok else 'fails'}", flush=True)
    return ok


def main() -> int:
    """Bisect between ``--low`` (fails) and ``--high`` (boots); print the floor."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ready", default="", help="prefix of the application's line that means it is up")
    parser.add_argument("--low", type=int, default=48, help="MiB known (or assumed) too small")
    parser.add_argument("--high", type=int, default=256, help="MiB known to be enough")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds per boot")
    parser.add_argument("run_args", nargs="*", help="arguments of unik run (after --)")
    ns = parser.parse_args()
    low, high = ns.low, ns.high
    if not boots(high, ns.ready, ns.run_args, ns.timeout):
        print(f"it does not boot at --high {high} MiB either", file=sys.stderr)
        return 1
    while high - low > 1:
        mid = (low + high) // 2
        if boots(mid, ns.ready, ns.run_args, ns.timeout):
            high = mid
        else:
            low = mid
    print(f"floor: {high} MiB (fails at {low})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
