"""Following a guest's console: the loop QEMU's runner and xl's share.

Both start a process whose standard output is the guest's console (QEMU's serial port,
``xl create -c``'s ``hvc0``), copy it as it comes, note when the first byte came, and
read until the process closes it.  What differs — how a guest is asked to stop, where
its exit status is, what a timeout does — is each runner's ``tick``, called after every
turn of the loop.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from typing import BinaryIO

#: How much of the console is kept when the whole is not (the init's last lines).
TAIL = 4096


class GuestConsole:
    """The console of ``proc`` (its standard output) and, when piped, its own standard error.

    The console is copied to ``console`` and kept in :attr:`out` (``keep``), else only its
    last :data:`TAIL` bytes in :attr:`tail`; the process's standard error is copied to
    ``stderr`` and kept in :attr:`err`.
    """

    def __init__(self, proc: subprocess.Popen[bytes], console: BinaryIO | None, *, stderr: BinaryIO | None = None,
                 keep: bool = True) -> None:
        self.proc, self.console, self.stderr, self.keep = proc, console, stderr, keep
        self.start = time.monotonic()
        #: Seconds from the start to the console's first byte (``None``: nothing yet).
        self.first: float | None = None
        self.out = bytearray()
        self.err = bytearray()
        self.tail = b""

    def elapsed(self) -> float:
        """Seconds since the process started."""
        return time.monotonic() - self.start

    def silent_for(self, seconds: float) -> bool:
        """Whether the console has said nothing for the first ``seconds``."""
        return self.first is None and self.elapsed() > seconds

    def follow(self, tick: Callable[[], None], poll: float) -> int:
        """Copy until the process closes its streams, calling ``tick()`` at least every ``poll`` s; its exit status.

        Whatever happens (``tick`` may raise), the process is killed if it still runs and
        its pipes are closed.
        """
        proc = self.proc
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        try:
            sel.register(proc.stdout, selectors.EVENT_READ, self._console)
            if proc.stderr is not None:
                sel.register(proc.stderr, selectors.EVENT_READ, self._stderr)
            streams = len(sel.get_map())
            while streams:
                for key, _ in sel.select(timeout=poll):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        key.data(chunk)
                    else:
                        sel.unregister(key.fileobj)
                        streams -= 1
                tick()
            return proc.wait()
        finally:
            sel.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    def _console(self, chunk: bytes) -> None:
        if self.first is None:
            self.first = self.elapsed()
        if self.console is not None:
            self.console.write(chunk)
            self.console.flush()
        if self.keep:
            self.out += chunk
        else:
            self.tail = (self.tail + chunk)[-TAIL:]

    def _stderr(self, chunk: bytes) -> None:
        self.err += chunk
        if self.stderr is not None:
            self.stderr.write(chunk)
            self.stderr.flush()
