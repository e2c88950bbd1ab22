"""Progress reporting for slow steps (emitting, downloading, booting).

Steps print to stderr as ``unik: <step>...`` and, when done, how long they took; on a
terminal a step that runs for more than a moment shows a spinner.  ``quiet`` silences
everything but warnings.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is 1: ``1 device``, ``3 devices``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


class Progress:
    """Prints what unik is doing, so that nothing slow happens silently."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet

    def _tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def info(self, message: str) -> None:
        """Print one line."""
        if not self.quiet:
            print(f"unik: {message}", file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        """Print a warning, even when quiet."""
        print(f"unik: warning: {message}", file=self.stream, flush=True)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Report the start and the duration of ``what``; a spinner on terminals."""
        if self.quiet:
            yield
            return
        start = time.monotonic()
        done = threading.Event()
        spinner: threading.Thread | None = None
        if self._tty():
            def spin() -> None:
                frames = "|/-\\"
                i = 0
                while not done.wait(0.2):
                    elapsed = time.monotonic() - start
                    self.stream.write(f"\runik: {what}... {frames[i % 4]} {elapsed:.0f}s")
                    self.stream.flush()
                    i += 1
            spinner = threading.Thread(target=spin, daemon=True)
            spinner.start()
        else:
            print(f"unik: {what}...", file=self.stream, flush=True)
        ok = False
        try:
            yield
            ok = True
        finally:
            done.set()
            if spinner is not None:
                spinner.join()
                self.stream.write("\r\x1b[K")
            elapsed = time.monotonic() - start
            status = "done" if ok else "failed"
            print(f"unik: {what}: {status} ({elapsed:.1f}s)", file=self.stream, flush=True)
