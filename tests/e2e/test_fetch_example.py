"""examples/fetch end to end: a URL fetched by name over HTTPS from a kernel-side server.

In a network namespace the test creates: a TAP, dnsmasq giving the lease (with itself as
the DNS server) and the name ``web.test`` (authoritative, an A record and a CNAME), and
``openssl s_server -WWW`` serving a random file with a certificate for ``web.test`` from
a test CA.  examples/fetch, built by the real ``unik`` command with that CA baked
(``ca = "ca.pem"``), runs on the unix target over the TAP and in a virtio VM: it resolves
the name with unik's resolver (servers from DHCP), connects by Happy Eyeballs, sends
SNI, verifies the certificate and name, and prints the status and the body's SHA-256.
A second run asks for a name the certificate does not carry and must fail to verify.
Needs root, /dev/net/tun, dnsmasq and openssl (and QEMU for the VM).
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from host_tools import needs
from unik.testing import network_namespace, tap_unavailable, write_ca_and_leaf

REPO = Path(__file__).resolve().parents[2]
UNIK = str(Path(sys.executable).with_name("unik"))
RUN_TIMEOUT_S = 420.0

pytestmark = [pytest.mark.root, pytest.mark.skipif(tap_unavailable() is not None, reason=str(tap_unavailable()))]


@dataclass
class Site:
    """The namespace: its name, the TAP, the host side's address, the body served."""

    ns: str
    tap: str
    prefix: str
    body: bytes
    dnsmasq_log: Path

    @property
    def host(self) -> str:
        return f"{self.prefix}.1"


def wait_listening(ns: str, port: int, proto: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-ltn" if proto == "tcp" else "-lun"],
                             capture_output=True, text=True).stdout
        if f":{port} " in out:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}/{proto} in {ns}")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A namespace serving https://web.test/blob.bin (and alias.test) with DHCP and DNS from dnsmasq."""
    prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    tap = f"ukf{secrets.token_hex(4)}"
    body = os.urandom(200_000)
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.bin").write_bytes(body)
    write_ca_and_leaf(tmp_path, ["web.test", "alias.test"])
    with network_namespace("unik-fetch") as ns:
        for cmd in (["ip", "-n", ns, "tuntap", "add", "dev", tap, "mode", "tap"],
                    ["ip", "-n", ns, "addr", "add", f"{prefix}.1/24", "dev", tap],
                    ["ip", "-n", ns, "link", "set", tap, "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]):
            subprocess.run(cmd, check=True)
        log = tmp_path / "dnsmasq.log"
        procs = [
            subprocess.Popen(["ip", "netns", "exec", ns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
                              "--user=root", "--no-resolv", "--no-hosts", f"--interface={tap}", "--bind-interfaces",
                              f"--pid-file={tmp_path}/pid", f"--dhcp-leasefile={tmp_path}/leases",
                              f"--dhcp-range={prefix}.50,{prefix}.60,5m", f"--dhcp-option=option:router,{prefix}.1",
                              "--local=/test/", "--auth-zone=test", f"--auth-server=ns.test,{tap}",
                              f"--host-record=web.test,{prefix}.1", "--cname=alias.test,web.test",
                              f"--host-record=other.test,{prefix}.1", "--log-queries",
                              f"--log-facility={log}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen(["ip", "netns", "exec", ns, "openssl", "s_server", "-WWW", "-accept", "443",
                              "-cert", str(tmp_path / "cert.pem"), "-key", str(tmp_path / "key.pem"), "-quiet"],
                             cwd=www, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        try:
            wait_listening(ns, 53, "udp")
            wait_listening(ns, 443, "tcp")
            yield Site(ns, tap, prefix, body, log)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


def fetch_app(tmp_path: Path, target: str, *configure: str) -> Path:
    """examples/fetch copied, the test CA baked, configured for ``target`` and built."""
    app = tmp_path / f"fetch-{target}"
    shutil.copytree(REPO / "examples" / "fetch", app,
                    ignore=shutil.ignore_patterns("_build", "dist", "*.egg-info", "__pycache__"))
    shutil.copy(tmp_path / "ca.pem", app / "ca.pem")
    toml = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(toml.replace('# ca = "ca.pem"', 'ca = "ca.pem"'))
    for step in (["configure", "-t", target, *configure], ["build"]):
        done = subprocess.run([UNIK, *step], cwd=app, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return app


def run_fetch(site: Site, app: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    # --timeout: a loaded machine slows a TCG guest's TLS handshake and transfer well past the default 30 s
    return subprocess.run(["ip", "netns", "exec", site.ns, UNIK, "run", *extra, f"--url={url}", "--timeout=180"],
                          cwd=app,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def check_fetched(site: Site, done: subprocess.CompletedProcess[str]) -> None:
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert f"200 ok from {site.host}" in out.lower(), out
    assert f"{len(site.body)} bytes sha256={hashlib.sha256(site.body).hexdigest()}" in out, out


@needs("dnsmasq", "openssl", "ss")
def test_fetch_by_name_on_the_unix_tap_target(site: Site, tmp_path: Path) -> None:
    app = fetch_app(tmp_path, "unix", "--net", f"service={site.tap}")
    assert "unik_tcpip.stack import TcpipStack" in (app / "_build" / "unix" / "main.py").read_text()
    check_fetched(site, run_fetch(site, app, "https://web.test/blob.bin"))
    check_fetched(site, run_fetch(site, app, "https://alias.test/blob.bin"))  # through the CNAME
    log = site.dnsmasq_log.read_text()
    assert "[A] web.test" in log and "[A] alias.test" in log
    assert "[AAAA]" not in log  # the stack has no IPv6 yet: only A is asked
    # a name the certificate does not carry: the handshake fails verification, exit status 2
    wrong = run_fetch(site, app, "https://other.test/blob.bin")
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "certificate" in (wrong.stdout + wrong.stderr).lower()
    missing = run_fetch(site, app, "https://nowhere.test/blob.bin")
    assert missing.returncode == 2 and "no such name" in missing.stdout + missing.stderr


@needs("dnsmasq", "openssl", "ss", "qemu-system-x86_64")
@pytest.mark.slow
def test_fetch_by_name_in_a_virtio_vm(site: Site, tmp_path: Path) -> None:
    from example_support import missing_vm_tools

    why = missing_vm_tools()
    if why:
        pytest.skip(f"the virtio VM needs QEMU and apt: {why}")
    app = fetch_app(tmp_path, "virtio", "--net", f"service={site.tap}")
    check_fetched(site, run_fetch(site, app, "https://web.test/blob.bin", "--accel", "tcg"))
    # run keys reach the guest's resolver: a static name, asking dnsmasq nothing about it
    check_fetched(site, run_fetch(site, app, "https://alias.test/blob.bin", "--accel", "tcg",
                                  f"--hosts=alias.test={site.host}", f"--dns={site.host}"))
    assert "alias.test" not in site.dnsmasq_log.read_text()
