"""examples/https under hvt: OpenSSL inside the unikernel answers curl and openssl s_client over a TAP."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hvt_support import ROOT, UNIK, tap_guest_namespace
from tap_support import curl_in, serving

HOST, UNIK_ADDR = "10.79.2.1", "10.79.2.2"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace holding a TAP ``hvt0`` (with a virtio-net header) and the host's address."""
    with tap_guest_namespace("unikhvttls", HOST, "openssl") as name:
        yield name


def _s_client(namespace: str, cert: Path, *args: str) -> str:
    proc = subprocess.run(["ip", "netns", "exec", namespace, "openssl", "s_client", "-brief", "-connect",
                           f"{UNIK_ADDR}:8443", "-CAfile", str(cert), "-verify_return_error", *args],
                          input="", capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr  # -brief reports the handshake on stderr


def test_examples_https_answers_curl_and_s_client_from_the_unikernel(tmp_path: Path, namespace: str) -> None:
    app = tmp_path / "https"
    shutil.copytree(ROOT / "examples" / "https", app, ignore=shutil.ignore_patterns("_build", "dist", "certs"))
    subprocess.run([UNIK, "-q", "tls", "selfsigned", "-o", "certs", "-n", UNIK_ADDR], cwd=app, check=True,
                   timeout=60)
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt", f"--ipv4={UNIK_ADDR}/24"], cwd=app, check=True,
                   timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=300)
    # cryptography is unik-lib-tls's host-side extra: the guest reads certificates without it
    carried = json.loads((app / "dist" / "https-hvt" / "artifact.json").read_text())["manifest"]["distributions"]
    assert "unik-lib-tls" in carried and not {"cryptography", "cffi", "pycparser"} & set(carried), carried
    cert = app / "certs" / "cert.pem"
    refused = subprocess.run([UNIK, "run", "--net", "service=hvt0", "--tls-cert", str(cert), "--tls-key",
                              str(app / "certs" / "key.pem")], cwd=app, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "the unikernel cannot read host files" in refused.stderr, refused.stderr
    with serving(namespace, app, f"serving https on {UNIK_ADDR}:8443", "--net", "service=hvt0") as server:
        got = curl_in(namespace, f"https://{UNIK_ADDR}:8443/", "--cacert", str(cert))
        assert got.returncode == 0, got.stderr
        assert got.stdout == (ROOT / "examples" / "https" / "htdocs" / "index.html").read_text()
        # TLS 1.3, and TLS 1.2 with AES-GCM and with ChaCha20: OpenSSL's CPU dispatch inside the
        # guest takes paths this KVM runs (the monitor's CPUID hides AVX and XSAVE)
        brief = _s_client(namespace, cert, "-tls1_3")
        assert "Protocol version: TLSv1.3" in brief and "Verification: OK" in brief, brief
        for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
            brief = _s_client(namespace, cert, "-tls1_2", "-cipher", cipher)
            assert re.search(rf"Ciphersuite: {cipher}\b", brief), brief
        # the key-exchange groups of unik-lib-tls's profile, set through hvt's _unik_ssl_groups: X25519,
        # P-256 and P-384, and no other (OpenSSL's defaults would take X448 and P-521 too)
        for group in ("X25519", "P-256", "P-384"):
            assert f"Server Temp Key: {'X25519' if group == 'X25519' else 'ECDH'}" in \
                _s_client(namespace, cert, "-groups", group)
        for group in ("X448", "P-521"):
            refused = subprocess.run(["ip", "netns", "exec", namespace, "openssl", "s_client", "-brief", "-connect",
                                      f"{UNIK_ADDR}:8443", "-CAfile", str(cert), "-groups", group],
                                     input="", capture_output=True, text=True, timeout=30)
            assert refused.returncode != 0 and "handshake failure" in refused.stderr, refused.stderr
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) in (128 + signal.SIGTERM, 143)
