"""examples/http and examples/https under spt: curl, from a namespace the test creates, through the TAP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import require
from solo5_support import UNIK, need_sandbox

ROOT = Path(__file__).resolve().parents[2]
HOST, UNIK_ADDR = "10.77.0.1", "10.77.0.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=15)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace holding a persistent TAP ``spt0`` with the host's address."""
    need_sandbox()
    require("ip", "curl")
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun")
    name = f"unikspthttp{os.getpid()}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "tuntap", "add", "dev", "spt0", "mode", "tap", "vnet_hdr")
        ip("-n", name, "addr", "add", f"{HOST}/24", "dev", "spt0")
        ip("-n", name, "link", "set", "spt0", "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=15)


def test_examples_http_answers_curl(tmp_path: Path, namespace: str) -> None:
    app = tmp_path / "http"
    shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([UNIK, "-q", "configure", "-t", "spt", f"--ipv4={UNIK_ADDR}/24"], cwd=app, check=True,
                   timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=60)
    server = subprocess.Popen(["ip", "netns", "exec", namespace, UNIK, "run", "--net", "service=spt0"],
                              cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline().strip()
        if first != f"serving on {UNIK_ADDR}:8080":
            server.kill()
            _, err = server.communicate(timeout=30)
            pytest.fail(f"the server did not start: {first!r}\n{err}")
        page = ""
        for _ in range(10):  # ARP and the first SYN may take a moment
            got = subprocess.run(["ip", "netns", "exec", namespace, "curl", "-sS", "--max-time", "5",
                                  f"http://{UNIK_ADDR}:8080/"], capture_output=True, text=True, timeout=15)
            if got.returncode == 0:
                page = got.stdout
                break
            time.sleep(0.5)
        assert (ROOT / "examples" / "http" / "htdocs" / "index.html").read_text() == page
        missing = subprocess.run(["ip", "netns", "exec", namespace, "curl", "-s", "-o", "/dev/null", "-w",
                                  "%{http_code}", "--max-time", "5", f"http://{UNIK_ADDR}:8080/nope"],
                                 capture_output=True, text=True, timeout=15)
        assert missing.stdout == "404"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


@pytest.mark.parametrize("pair", ["baked", "host files"])
def test_examples_https_answers_curl_with_the_certificate_read_before_the_seal(tmp_path: Path, namespace: str,
                                                                              pair: str) -> None:
    """The pair baked into the artifact, or host files named by --tls-cert/--tls-key (in its read-only root)."""
    app = tmp_path / "https"
    shutil.copytree(ROOT / "examples" / "https", app, ignore=shutil.ignore_patterns("_build", "dist", "certs"))
    subprocess.run([UNIK, "-q", "tls", "selfsigned", "-o", "certs", "-n", UNIK_ADDR], cwd=app, check=True,
                   timeout=60, capture_output=True)
    subprocess.run([UNIK, "-q", "configure", "-t", "spt", f"--ipv4={UNIK_ADDR}/24"], cwd=app, check=True,
                   timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=60)
    trusted, extra = app / "certs" / "cert.pem", []
    if pair == "host files":  # another pair, outside the artifact: only the run names it
        subprocess.run([UNIK, "-q", "tls", "selfsigned", "-o", str(tmp_path / "host"), "-n", UNIK_ADDR], check=True,
                       timeout=60, capture_output=True)
        trusted = tmp_path / "host" / "cert.pem"
        extra = [f"--tls-cert={trusted}", f"--tls-key={tmp_path / 'host' / 'key.pem'}"]
    server = subprocess.Popen(["ip", "netns", "exec", namespace, UNIK, "run", "--net", "service=spt0", *extra],
                              cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline().strip()
        if first != f"serving https on {UNIK_ADDR}:8443":
            server.kill()
            _, err = server.communicate(timeout=30)
            pytest.fail(f"the server did not start: {first!r}\n{err}")
        got = None
        for _ in range(10):  # ARP and the first SYN may take a moment
            got = subprocess.run(["ip", "netns", "exec", namespace, "curl", "-sS", "--max-time", "5",
                                  "--cacert", str(trusted), f"https://{UNIK_ADDR}:8443/"],
                                 capture_output=True, text=True, timeout=15)
            if got.returncode == 0:
                break
            time.sleep(0.5)
        assert got is not None and got.returncode == 0, got.stderr if got else ""
        assert (ROOT / "examples" / "https" / "htdocs" / "index.html").read_text() == got.stdout
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 128 + signal.SIGTERM
        assert "killed by the sandbox" not in (server.stderr.read() if server.stderr else "")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
