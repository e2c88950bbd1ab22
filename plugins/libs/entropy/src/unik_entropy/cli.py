"""``unik random -n BYTES``: the generator's output on standard output, for external test suites."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from unik.errors import UnikError

CHUNK = 64 * 1024


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``random``."""
    p = subparsers.add_parser(
        "random", help="write Fortuna output to stdout (unik-lib-entropy)",
        description="Write BYTES bytes of unik's Fortuna output to standard output "
        "(-n 0: until the reader goes away), e.g. `unik random -n 0 | dieharder -a -g 200`.",
    )
    p.add_argument("-n", "--bytes", type=_count, default=32, metavar="BYTES",
                   help="how many bytes (K, M, G suffixes; 0: endless; default 32)")
    p.add_argument("--hex", action="store_true", help="print hexadecimal text instead of raw bytes")
    p.add_argument("--reseed-interval", type=float, default=1.0, metavar="SECONDS",
                   help="feed the sources into the pools this often (default 1)")
    p.set_defaults(func=cmd_random)


def _count(text: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    try:
        value = int(text[:-1] if mult > 1 else text) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def cmd_random(ns: argparse.Namespace) -> int:
    """Write the bytes; a reader that goes away ends the command quietly."""
    from .fortuna import Fortuna  # when the command runs, not when the plugin adds it

    rng = Fortuna()
    try:
        rng.bootstrap()
    except UnikError as exc:
        print(f"unik random: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head -c` ends us like any filter
    fd = sys.stdout.fileno()
    left: int | None = ns.bytes or None
    next_round = time.monotonic() + ns.reseed_interval
    try:
        while left is None or left > 0:
            n = CHUNK if left is None else min(CHUNK, left)
            data = rng.generate(n)
            out = data.hex().encode() if ns.hex else data
            view = memoryview(out)
            while view:
                view = view[os.write(fd, view):]
            if left is not None:
                left -= n
            if time.monotonic() >= next_round:
                rng.read_sources()
                next_round = time.monotonic() + ns.reseed_interval
        if ns.hex:
            os.write(fd, b"\n")
    except BrokenPipeError:
        return 0
    return 0
