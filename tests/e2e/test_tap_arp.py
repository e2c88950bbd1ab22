"""End to end on a real TAP: configure, build and run an application that answers ARP.

The test drives the real command line (``unik configure/build/run`` from the venv
running the tests), lets the running artifact create its TAP, moves the TAP into a
network namespace made for the test, and makes the kernel there ask for the app's
address.  The kernel must learn the app's MAC, and the app must exit 0.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_support import UNIK, Unik
from served_support import stop
from unik.testing import network_namespace, tap_unavailable

APP = Path(__file__).parent / "apps" / "arp_responder"


pytestmark = [pytest.mark.root, pytest.mark.skipif(tap_unavailable() is not None, reason=str(tap_unavailable()))]

SEND_UDP = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.sendto(b"who are you?", (sys.argv[1], 9))
"""


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def wait_for(what: str, check: Callable[[], bool], timeout: float, also: Callable[[], str | None]) -> None:
    """Poll ``check`` every 50 ms for ``timeout`` s; ``also`` may report a reason to stop early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        problem = also()
        if problem:
            raise AssertionError(f"while waiting for {what}: {problem}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def netns() -> Iterator[str]:
    with network_namespace("unik-t", ipv6=True) as name:
        yield name


def test_arp_responder_on_a_tap(tmp_path: Path, netns: str, unik: Unik) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("_build", "dist", "__pycache__", "*.egg-info"))
    ifname = f"uke{secrets.token_hex(5)}"
    prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    host, address = f"{prefix}.1", f"{prefix}.2"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}

    # count 2: the first answer is checked in the neighbour table while the app still
    # runs (its TAP, and the entries on it, vanish when it exits); the second ends it.
    unik("configure", "-t", "unix", "--net", f"net={ifname}", "--address", address, "--count", "2", cwd=app)
    unik("build", cwd=app, env=env)
    log = tmp_path / "run.log"
    sh("ip", "tuntap", "add", ifname, "mode", "tap")  # unik run refuses a TAP that does not exist
    with open(log, "wb") as out:
        proc = subprocess.Popen([UNIK, "run"], cwd=app, env=dict(os.environ, **env), stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        def exited() -> str | None:
            if proc.poll() is None:
                return None
            return f"unik run exited {proc.returncode}:\n{log.read_text()}"

        def attached() -> bool:  # the application opened the TAP: its carrier is on
            return "LOWER_UP" in sh("ip", "link", "show", ifname, check=False).stdout

        wait_for(f"the application to open TAP {ifname}", attached, 30, exited)
        sh("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", check=False)
        sh("ip", "link", "set", ifname, "netns", netns)
        sh("ip", "-n", netns, "addr", "add", f"{host}/24", "dev", ifname)
        sh("ip", "-n", netns, "link", "set", ifname, "up")

        def app_mac() -> str | None:
            match = re.search(r"answering ARP for \S+ as ([0-9a-f:]{17})", log.read_text())
            return match.group(1) if match else None

        wait_for("the application to start", lambda: app_mac() is not None, 30, exited)
        mac = app_mac()
        assert mac is not None
        assert int(mac[:2], 16) & 0x03 == 0x02  # locally administered unicast
        kernel_side = sh("ip", "-n", netns, "-o", "link", "show", ifname).stdout
        assert mac not in kernel_side  # the unik MAC is its own, not the TAP's

        def learnt() -> bool:
            neigh = sh("ip", "-n", netns, "neigh", "show", address, "dev", ifname).stdout
            return f"lladdr {mac}" in neigh

        # A datagram to the app's address makes the kernel ask (ARP) who has it.
        sh("ip", "netns", "exec", netns, sys.executable, "-c", SEND_UDP, address)
        wait_for(f"the kernel to learn {address} is at {mac}", learnt, 15, exited)
        sh("ip", "-n", netns, "neigh", "flush", "dev", ifname)
        sh("ip", "netns", "exec", netns, sys.executable, "-c", SEND_UDP, address)
        status = proc.wait(timeout=30)
        output = log.read_text()
        assert status == 0, output
        assert output.count(f"that {address} is {mac}") == 2, output
    finally:
        stop(proc, timeout=10)
        sh("ip", "link", "del", ifname, check=False)  # still here only if it never reached the namespace
