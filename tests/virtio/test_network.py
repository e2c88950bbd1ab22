"""The guest's NIC: virtio-net on a TAP inside a namespace the test creates, read through the ring."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from virtio_support import RESPONDER, RUN_TIMEOUT_S, UNIK, build, copy_example, unik

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace holding a TAP ``tapv0``, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and TAP devices)")
    name = f"unik-virtio-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "tuntap", "add", "dev", "tapv0", "mode", "tap"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "tapv0", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_frames_go_both_ways_through_a_tap(ping_app: Path, netns: str) -> None:
    responder = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", RESPONDER, "tapv0"],
                                 stdout=subprocess.PIPE, text=True)
    try:
        assert responder.stdout is not None and responder.stdout.readline().strip() == "ready"
        proc = subprocess.run(["ip", "netns", "exec", netns, UNIK, "run", "--accel", "tcg", "--net", "uplink=tapv0"],
                              cwd=ping_app, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    finally:
        responder.kill()
        responder.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reply pong" in proc.stdout.splitlines()
    assert "nic 52:54:00:" in proc.stdout  # the runner's MAC, found by the guest
    assert "counters rx " in proc.stdout


def test_a_network_device_without_a_tap_is_refused(ping_app: Path) -> None:
    proc = subprocess.run([UNIK, "run", "--accel", "tcg"], cwd=ping_app, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode != 0 and "unik run --net uplink=TAP" in proc.stderr


@pytest.fixture
def empty_netns() -> Iterator[str]:
    """A network namespace with nothing in it, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and TAP devices)")
    name = f"unik-virtio-auto-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_net_auto_creates_a_tap_and_says_how_to_reach_the_guest(ping_app: Path, empty_netns: str) -> None:
    # The responder waits (bounded) for QEMU to create unik0 in the namespace, then brings it up.
    wait_then_respond = (
        "import os, subprocess, time\n"
        "for _ in range(600):\n"
        "    if os.path.exists('/sys/class/net/unik0'): break\n"
        "    time.sleep(0.1)\n"
        "subprocess.run(['ip', 'link', 'set', 'unik0', 'up'], check=True)\n" + RESPONDER
    )
    responder = subprocess.Popen(["ip", "netns", "exec", empty_netns, sys.executable, "-c", wait_then_respond,
                                  "unik0"], stdout=subprocess.PIPE, text=True)
    try:
        proc = subprocess.run(["ip", "netns", "exec", empty_netns, UNIK, "run", "--accel", "tcg",
                               "--net", "uplink=auto"], cwd=ping_app, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    finally:
        responder.kill()
        responder.wait()
    assert "QEMU creates TAP unik0" in proc.stderr and "ip addr add" in proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reply pong" in proc.stdout.splitlines()


def test_examples_http_in_the_guest_answers_curl(tmp_path: Path) -> None:
    # The page is served by unik's own TCP/IP stack inside the guest, over the virtio-net NIC.
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and TAP devices)")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    app = copy_example("http", tmp_path)
    build(app, "--net", "service=tapv0", "--ipv4=10.97.0.2/24")
    plan = unik("query", "plan", cwd=app).stdout
    assert '"provider": "tcpip.stack"' in plan
    name = f"unik-virtio-http-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    guest = None
    try:
        for cmd in (["tuntap", "add", "dev", "tapv0", "mode", "tap"], ["addr", "add", "10.97.0.1/24", "dev", "tapv0"],
                    ["link", "set", "tapv0", "up"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        guest = subprocess.Popen(["ip", "netns", "exec", name, UNIK, "run", "--accel", "tcg"], cwd=app,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert guest.stdout is not None
        console: list[str] = []
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while "serving on 10.97.0.2:8080\n" not in console:
            line = guest.stdout.readline()
            assert line and time.monotonic() < deadline, "the guest never served:\n" + "".join(console)
            console.append(line)
        page = subprocess.run(["ip", "netns", "exec", name, "curl", "-sS", "--max-time", "20",
                               "--retry", "3", "http://10.97.0.2:8080/"], capture_output=True, text=True)
        assert "<h1>Hello from unik</h1>" in page.stdout, page.stderr + "".join(console)
    finally:
        if guest is not None:
            guest.terminate()
            try:
                guest.wait(timeout=30)
            except subprocess.TimeoutExpired:
                guest.kill()
                guest.wait()
        subprocess.run(["ip", "netns", "del", name], check=False)
