"""The guest's NIC: virtio-net on a TAP inside a namespace the test creates, read through the ring."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import needs, require
from served_support import serving
from tap_support import netns_with
from unik_vmimage.keys import instance_mac
from virtio_support import RESPONDER
from vm_support import RUN_TIMEOUT_S, UNIK, unik

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace holding a TAP ``tapv0``, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and TAP devices)")
    with netns_with(f"unik-virtio-{os.getpid()}", ["tuntap", "add", "dev", "tapv0", "mode", "tap"],
                    ["link", "set", "tapv0", "up"]) as name:
        yield name


def test_frames_go_both_ways_through_a_tap(ping_app: Path, netns: str) -> None:
    responder = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", RESPONDER, "tapv0"],
                                 stdout=subprocess.PIPE, text=True)
    try:
        assert responder.stdout is not None and responder.stdout.readline().strip() == "ready"
        name = f"ping-{os.getpid()}"
        proc = subprocess.run(["ip", "netns", "exec", netns, UNIK, "run", "--accel", "tcg", "--net", "uplink=tapv0",
                               "--name", name], cwd=ping_app, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    finally:
        responder.kill()
        responder.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reply pong" in proc.stdout.splitlines()
    assert f"nic {instance_mac(name, 'uplink')}" in proc.stdout  # the instance's MAC, found by the guest
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
    with netns_with(f"unik-virtio-auto-{os.getpid()}") as name:
        yield name


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
    # The application has no IPv4 stack: the TAP gets no address, and is gone after the run.
    assert ("unik: network device uplink: created TAP unik0 with no address on the host side; it is removed "
            "when the run ends") in proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reply pong" in proc.stdout.splitlines()
    gone = subprocess.run(["ip", "-n", empty_netns, "link", "show", "unik0"], capture_output=True, text=True)
    assert gone.returncode != 0


def test_a_tap_that_does_not_exist_is_refused_before_booting(ping_app: Path, empty_netns: str) -> None:
    proc = subprocess.run(["ip", "netns", "exec", empty_netns, UNIK, "run", "--accel", "tcg",
                           "--net", "uplink=ukmissing0"], cwd=ping_app, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 1
    assert ("unik: error: network device uplink: there is no TAP ukmissing0 here: create it first "
            "(ip tuntap add ukmissing0 mode tap; ip addr add ... dev ukmissing0), or let unik make one: "
            "--net uplink=auto") in proc.stderr
    assert "booting" not in proc.stderr


@pytest.fixture
def http_netns() -> Iterator[str]:
    """A namespace with TAP ``tapv0`` at 10.97.0.1/24 (the host side of the guest's NIC)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and TAP devices)")
    require("curl")
    with netns_with(f"unik-virtio-http-{os.getpid()}", ["tuntap", "add", "dev", "tapv0", "mode", "tap"],
                    ["addr", "add", "10.97.0.1/24", "dev", "tapv0"], ["link", "set", "tapv0", "up"]) as name:
        yield name


def _serve_and_curl(app: Path, netns: str, *run_args: str) -> tuple[str, list[str]]:
    """Boot examples/http in ``netns``, wait for "serving on ADDR:8080", curl it: (page, console)."""
    with serving([UNIK, "run", "--accel", "tcg", *run_args], app, RUN_TIMEOUT_S, netns,
                 prefix="serving on ") as (_guest, console):
        address = console[-1].split()[-1]
        page = subprocess.run(["ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "20", "--retry", "3",
                               f"http://{address}/"], capture_output=True, text=True)
        assert "<h1>Hello from unik</h1>" in page.stdout, page.stderr + "".join(console)
        return page.stdout, console


def test_examples_http_in_the_guest_answers_curl(http_app: Path, http_netns: str) -> None:
    # The page is served by unik's own TCP/IP stack inside the guest, over the virtio-net NIC;
    # the address is given at run time (the image, built without --ipv4, is shared with DHCP's test).
    plan = unik("query", "plan", cwd=http_app).stdout
    assert '"provider": "tcpip.stack"' in plan
    # after `--`: an argument of the application in the guest (as a key, --ipv4 would reconfigure and rebuild)
    _, console = _serve_and_curl(http_app, http_netns, "--", "--ipv4", "10.97.0.2/24")
    assert not any("building again" in line for line in console)
    assert console[-1] == "serving on 10.97.0.2:8080\n"


@needs("dnsmasq")
def test_examples_http_gets_its_address_from_dnsmasq(http_app: Path, http_netns: str, tmp_path: Path) -> None:
    # No --ipv4: unik's DHCP client in the guest asks dnsmasq (on the namespace's TAP) for a lease.
    leases = tmp_path / "leases"
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", http_netns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
         "--user=root", "--interface=tapv0", "--bind-interfaces", f"--pid-file={tmp_path}/pid",
         f"--dhcp-leasefile={leases}", "--dhcp-range=10.97.0.50,10.97.0.60,2m", "--dhcp-option=option:router,10.97.0.1",
         "--log-dhcp"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        name = f"dhcp-{os.getpid()}"
        _, console = _serve_and_curl(http_app, http_netns, "--name", name)
        assert dnsmasq.poll() is None, "dnsmasq exited early"
    finally:
        dnsmasq.terminate()
        log = dnsmasq.communicate(timeout=30)[0]
    address = console[-1].split()[-1].rsplit(":", 1)[0]
    assert address.startswith("10.97.0.") and 50 <= int(address.rsplit(".", 1)[1]) <= 60, console
    mac = instance_mac(name, "service")  # the instance's own
    assert f"DHCPACK(tapv0) {address} {mac}" in log, log  # the lease went to the guest's NIC
    assert address in leases.read_text() and mac in leases.read_text()
