"""QEMU's machine protocol (QMP), as much as a graceful stop needs: the power button.

The runner starts QEMU with ``-qmp unix:SOCKET,server=on,wait=off``; a stop connects,
leaves capabilities negotiation (``qmp_capabilities``) and sends ``system_powerdown``,
an ACPI power-button press that the guest's init turns into SIGTERM for the
application.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from unik.errors import RunError


def option(path: Path) -> list[str]:
    """QEMU's arguments for a QMP server on the Unix socket ``path``."""
    return ["-qmp", f"unix:{path},server=on,wait=off"]


class Connection:
    """One QMP session: greeting read, capabilities negotiated."""

    def __init__(self, path: Path, timeout: float = 3.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._buffer = b""
        try:
            self._sock.connect(str(path))
            greeting = self._message()
            if "QMP" not in greeting:
                raise RunError(f"{path} is not a QMP socket (it said {greeting!r})")
            self.execute("qmp_capabilities")
        except OSError as exc:
            self._sock.close()
            raise RunError(f"cannot talk to QEMU's QMP socket {path}: {exc}") from None

    def _message(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise OSError("QEMU closed the QMP socket")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        data: dict[str, Any] = json.loads(line)
        return data

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run ``command`` and return its ``return`` value (events on the way are skipped)."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            reply = self._message()
            if "error" in reply:
                raise RunError(f"QEMU refused {command}: {reply['error'].get('desc', reply['error'])}")
            if "return" in reply:
                return reply["return"]

    def close(self) -> None:
        """End the session."""
        self._sock.close()


def powerdown(path: Path, wait: float = 3.0) -> None:
    """Press the guest's ACPI power button (``system_powerdown``) through ``path``.

    QEMU creates the socket as it starts: a press right after the start waits up to
    ``wait`` seconds for it to appear.
    """
    deadline = time.monotonic() + wait
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    conn = Connection(path)
    try:
        conn.execute("system_powerdown")
    finally:
        conn.close()
