"""Many instances, one image: two VMs of examples/http on one bridge each answer curl."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import require
from served_support import stop, wait_serving
from tap_support import netns_with
from unik_vmimage.keys import instance_mac
from vm_support import RUN_TIMEOUT_S, UNIK

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.fixture
def bridge_netns() -> Iterator[str]:
    """A namespace with bridge ``br0`` at 10.98.0.1/24 and two TAPs on it, ``tapa`` and ``tapb``."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, a bridge and TAP devices)")
    require("curl")
    taps = [cmd for tap in ("tapa", "tapb") for cmd in (["tuntap", "add", "dev", tap, "mode", "tap"],
                                                        ["link", "set", tap, "master", "br0"],
                                                        ["link", "set", tap, "up"])]
    with netns_with(f"unik-two-{os.getpid()}", ["link", "add", "br0", "type", "bridge"],
                    ["addr", "add", "10.98.0.1/24", "dev", "br0"], ["link", "set", "br0", "up"], *taps) as name:
        yield name


def _start(app: Path, netns: str, name: str, tap: str, address: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", netns, UNIK, "run", "--accel", "tcg", "--name", name,
                             "--net", f"service={tap}", "--", "--ipv4", f"{address}/24"], cwd=app,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_serving(guest: subprocess.Popen[str]) -> list[str]:
    return wait_serving(guest, RUN_TIMEOUT_S, prefix="serving on ")


def test_two_instances_of_one_image_on_one_bridge_both_answer(http_app: Path, bridge_netns: str) -> None:
    pid = os.getpid()
    names = (f"web-a-{pid}", f"web-b-{pid}")
    first = _start(http_app, bridge_netns, names[0], "tapa", "10.98.0.2")
    guests = [first]
    try:
        _wait_serving(first)
        second = _start(http_app, bridge_netns, names[1], "tapb", "10.98.0.3")
        guests.append(second)
        _wait_serving(second)
        # Both answer, in turns, after the second started (with one MAC for both, the bridge sent
        # the first's frames to the second and curl to the first failed 4 times in 4).
        for _ in range(4):
            for address in ("10.98.0.2", "10.98.0.3"):
                page = subprocess.run(["ip", "netns", "exec", bridge_netns, "curl", "-sS", "--max-time", "20",
                                       f"http://{address}:8080/"], capture_output=True, text=True)
                assert "<h1>Hello from unik</h1>" in page.stdout, (address, page.stderr)
        neighbours = subprocess.run(["ip", "-n", bridge_netns, "neigh", "show", "dev", "br0"],
                                    capture_output=True, text=True, check=True).stdout
        for name, address in zip(names, ("10.98.0.2", "10.98.0.3"), strict=True):
            assert f"{address} lladdr {instance_mac(name, 'service')}" in neighbours, neighbours
    finally:
        for guest in guests:
            stop(guest)
