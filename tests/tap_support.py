"""Network namespaces the tests make, with their TAPs, bridges or veth pairs.

``netns_with`` makes a namespace and runs ``ip -n NAME ...`` commands in it; for the suites
whose artifact opens a TAP itself (spt, hvt), ``tap_namespace`` holds a persistent TAP
with a virtio-net header and the host's address, ``unik run`` is started inside it, its
first line is the application's "serving" line, and curl asks from the same namespace.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

UNIK = str(Path(sys.executable).parent / "unik")


def ip(*args: str) -> None:
    """Run ``ip ARGS`` (iproute2); raises if it fails."""
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=15)


@contextlib.contextmanager
def netns_with(name: str, *commands: list[str]) -> Iterator[str]:
    """A network namespace ``name`` set up by ``ip -n NAME COMMAND`` for each of ``commands``; deleted after."""
    ip("netns", "add", name)
    try:
        for command in commands:
            ip("-n", name, *command)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=15)


def tap_namespace(name: str, tap: str, host: str) -> contextlib.AbstractContextManager[str]:
    """A network namespace ``name`` holding a persistent TAP ``tap`` (virtio-net header) at ``host``/24."""
    return netns_with(name, ["tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"],
                      ["addr", "add", f"{host}/24", "dev", tap], ["link", "set", tap, "up"],
                      ["link", "set", "lo", "up"])


@contextlib.contextmanager
def serving(namespace: str, app: Path, first_line: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``unik run ARGS`` of ``app`` in ``namespace``, once it printed ``first_line``; killed on exit."""
    server = subprocess.Popen(["ip", "netns", "exec", namespace, UNIK, "run", *args],
                              cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline().strip()
        if first != first_line:
            server.kill()
            _, err = server.communicate(timeout=30)
            pytest.fail(f"the server did not start: {first!r}\n{err}")
        yield server
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


def curl_in(namespace: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """curl ``url`` from ``namespace``, tried 10 times 0.5 s apart (ARP and the first SYN may take a moment)."""
    for _ in range(10):
        got = subprocess.run(["ip", "netns", "exec", namespace, "curl", "-sS", "--max-time", "5", *args, url],
                             capture_output=True, text=True, timeout=15)
        if got.returncode == 0:
            break
        time.sleep(0.5)
    return got


def status_in(namespace: str, url: str) -> str:
    """The HTTP status of ``url`` asked from ``namespace``, once."""
    return subprocess.run(["ip", "netns", "exec", namespace, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "--max-time", "5", url], capture_output=True, text=True, timeout=15).stdout
