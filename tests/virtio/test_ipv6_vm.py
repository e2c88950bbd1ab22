"""IPv6 in a virtio guest: examples/http on unik's stack answers curl -6 at its SLAAC address.

The namespace's TAP carries dnsmasq's router advertisements (a /64 prefix); the guest's
stack forms its address from the prefix and its MAC (RFC 4862) over the packet ring, which
takes multicast frames, while the guest kernel keeps IPv6 off (``ipv6.disable_ipv6=1``).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from pathlib import Path

import pytest
from host_tools import needs
from served_support import serving, stop
from test_network import http_netns
from unik_vmimage.keys import instance_mac
from vm_support import RUN_TIMEOUT_S, UNIK

pytestmark = [pytest.mark.slow, pytest.mark.root]
__all__ = ["http_netns"]  # the fixture, imported for pytest
PREFIX = "2001:db8:97::"


def slaac_address(mac: str) -> str:
    """The address RFC 4862 forms from ``PREFIX``/64 and the modified EUI-64 of ``mac``."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes((b[0] ^ 2, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]))
    return str(ipaddress.IPv6Address(ipaddress.IPv6Address(PREFIX).packed[:8] + iid))


@needs("dnsmasq")
def test_examples_http_in_the_guest_answers_curl6_at_its_slaac_address(http_app: Path, http_netns: str,
                                                                       tmp_path: Path) -> None:
    ns = http_netns
    subprocess.run(["ip", "-n", ns, "addr", "add", f"{PREFIX}1/64", "dev", "tapv0", "nodad"], check=True)
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", ns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
         "--interface=tapv0", "--bind-interfaces", f"--pid-file={tmp_path}/pid", "--enable-ra",
         f"--dhcp-range={PREFIX},ra-only,64,10m", "--ra-param=tapv0,4"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    name = f"ipv6-{os.getpid()}"
    try:
        with serving([UNIK, "run", "--accel", "tcg", "--name", name, "--", "--ipv4", "10.97.0.2/24"], http_app,
                     RUN_TIMEOUT_S, ns, prefix="serving on ") as (_guest, console):
            address = slaac_address(instance_mac(name, "service"))  # the instance's own MAC
            page = None
            for _ in range(60):  # router solicitation, the advertisement, DAD: a few seconds under TCG
                page = subprocess.run(["ip", "netns", "exec", ns, "curl", "-6", "-sS", "--max-time", "5",
                                       f"http://[{address}]:8080/"], capture_output=True, text=True)
                if page.returncode == 0:
                    break
                time.sleep(1)
            assert page is not None and "<h1>Hello from unik</h1>" in page.stdout, (page and page.stderr, console)
            # And IPv4 on the same server, at the same time.
            page4 = subprocess.run(["ip", "netns", "exec", ns, "curl", "-4", "-sS", "--max-time", "10",
                                    "http://10.97.0.2:8080/"], capture_output=True, text=True)
            assert "<h1>Hello from unik</h1>" in page4.stdout, page4.stderr
    finally:
        stop(dnsmasq)
