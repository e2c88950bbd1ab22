"""examples/http and examples/https under spt: curl, from a namespace the test creates, through the TAP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import require
from solo5_support import UNIK, need_sandbox
from tap_support import curl_in, serving, status_in, tap_namespace

ROOT = Path(__file__).resolve().parents[2]
HOST, UNIK_ADDR = "10.77.0.1", "10.77.0.2"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace holding a persistent TAP ``spt0`` with the host's address."""
    need_sandbox()
    require("ip", "curl")
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun")
    with tap_namespace(f"unikspthttp{os.getpid()}", "spt0", HOST) as name:
        yield name


def test_examples_http_answers_curl(tmp_path: Path, namespace: str) -> None:
    app = tmp_path / "http"
    shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([UNIK, "-q", "configure", "-t", "spt", f"--ipv4={UNIK_ADDR}/24"], cwd=app, check=True,
                   timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=60)
    with serving(namespace, app, f"serving on {UNIK_ADDR}:8080", "--net", "service=spt0") as server:
        got = curl_in(namespace, f"http://{UNIK_ADDR}:8080/")
        assert (ROOT / "examples" / "http" / "htdocs" / "index.html").read_text() == got.stdout
        assert status_in(namespace, f"http://{UNIK_ADDR}:8080/nope") == "404"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 128 + signal.SIGTERM


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
    with serving(namespace, app, f"serving https on {UNIK_ADDR}:8443", "--net", "service=spt0", *extra) as server:
        got = curl_in(namespace, f"https://{UNIK_ADDR}:8443/", "--cacert", str(trusted))
        assert got.returncode == 0, got.stderr
        assert (ROOT / "examples" / "https" / "htdocs" / "index.html").read_text() == got.stdout
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 128 + signal.SIGTERM
        assert "killed by the sandbox" not in (server.stderr.read() if server.stderr else "")
