"""The host's side of a TAP on the unix target: a TAP named must exist; ``--net DEVICE=auto`` makes one.

Every run happens inside a network namespace the test creates (``ip netns exec``), so the
TAPs unik makes there are private to the test and vanish with the namespace.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import UNIK, Unik
from example_support import copy_example
from host_tools import needs
from unik.testing import network_namespace, tap_unavailable

pytestmark = [pytest.mark.root, pytest.mark.skipif(tap_unavailable() is not None, reason=str(tap_unavailable()))]
TIMEOUT = 60


@pytest.fixture
def netns() -> Iterator[str]:
    with network_namespace("unik-taps") as name:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name


@pytest.fixture(scope="module")
def http_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/http for unix, built once; each test configures the keys it needs (a fast rebuild)."""
    return copy_example("http", tmp_path_factory.mktemp("taps"))


def in_ns(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *args]


def links(netns: str) -> str:
    return subprocess.run(["ip", "-n", netns, "-o", "addr", "show"], capture_output=True, text=True).stdout


def subnet() -> str:
    return f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"


def test_a_tap_that_does_not_exist_is_refused_not_created(http_app: Path, netns: str, unik: Unik) -> None:
    ifname = f"ukm{os.getpid() % 100000}"
    unik("configure", "-t", "unix", "--net", f"service={ifname}", f"--ipv4={subnet()}.2/24", cwd=http_app)
    unik("build", cwd=http_app)
    run = subprocess.run(in_ns(netns, UNIK, "run"), cwd=http_app, capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 1, run.stdout + run.stderr
    assert (f"unik: error: network device service: there is no TAP {ifname} here: create it first "
            f"(ip tuntap add {ifname} mode tap; ip addr add ... dev {ifname}), or let unik make one: "
            f"--net service=auto") in run.stderr
    assert "Traceback" not in run.stderr
    assert ifname not in links(netns)


def test_auto_without_an_address_is_refused_with_the_reason(http_app: Path, netns: str, unik: Unik) -> None:
    unik("configure", "-t", "unix", "--net", "service=auto", cwd=http_app)
    run = subprocess.run(in_ns(netns, UNIK, "run"), cwd=http_app, capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 1
    assert ("unik: error: --net service=auto needs --ipv4: the host side of the new TAP gets an address in the "
            "guest's subnet, and without --ipv4 the guest waits for a DHCP lease") in run.stderr
    assert "unik0" not in links(netns)


@needs("ping")
def test_auto_makes_a_tap_in_the_guests_subnet_and_removes_it(http_app: Path, netns: str, unik: Unik) -> None:
    prefix = subnet()
    # The host side is the gateway when one is given, else the subnet's first free address.
    unik("configure", "-t", "unix", "--net", "service=auto", f"--ipv4={prefix}.1/24", cwd=http_app)
    proc = subprocess.Popen(in_ns(netns, UNIK, "run"), cwd=http_app, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        while not output or not output[-1].startswith("serving on"):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(output)
            output.append(line)
        assert (f"unik: network device service: created TAP unik0 with the host side at {prefix}.2/24; it is "
                f"removed when the run ends\n") in output
        assert f"inet {prefix}.2/24" in links(netns)
        # The host reaches the guest through the TAP: unik's stack answers the kernel's ping.
        ping = subprocess.run(in_ns(netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", f"{prefix}.1"),
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout + ping.stderr
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=TIMEOUT)
    assert "unik0" not in links(netns)


def test_auto_tap_is_removed_when_the_application_fails(http_app: Path, netns: str, unik: Unik) -> None:
    prefix = subnet()
    unik("configure", "-t", "unix", "--net", "service=auto", f"--ipv4={prefix}.2/24",
         f"--ipv4-gateway={prefix}.254", cwd=http_app)
    # Port 70000 is no TCP port: the application fails once its devices are up.
    run = subprocess.run(in_ns(netns, UNIK, "run", "--port", "70000"), cwd=http_app, capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert run.returncode != 0
    assert f"created TAP unik0 with the host side at {prefix}.254/24" in run.stderr
    assert "unik0" not in links(netns)


def test_without_ipv4_the_stack_says_it_waits_for_dhcp_then_fails(http_app: Path, netns: str, unik: Unik) -> None:
    # A TAP in the namespace with nothing serving DHCP on its link.
    subprocess.run(["ip", "-n", netns, "tuntap", "add", "ukdhcp0", "mode", "tap"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "ukdhcp0", "up"], check=True)
    unik("configure", "-t", "unix", "--net", "service=ukdhcp0", cwd=http_app)
    start = time.monotonic()
    run = subprocess.run(in_ns(netns, UNIK, "run", "--dhcp-timeout", "4"), cwd=http_app, capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stderr.splitlines()
    waiting = [i for i, line in enumerate(lines) if line.startswith("service: waiting for a DHCP lease on ")]
    failed = [i for i, line in enumerate(lines) if "network 'service': no DHCP lease within 4 s: no DHCP server "
              "answered on its link. Give a static address (--ipv4=ADDR/PREFIX)" in line]
    assert waiting and failed and waiting[0] < failed[0], run.stderr
    assert "(up to 4 s, --dhcp-timeout; --ipv4=ADDR/PREFIX gives a static address) ..." in lines[waiting[0]]
    assert 4 <= time.monotonic() - start < TIMEOUT
