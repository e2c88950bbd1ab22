"""examples/http under hvt: CPython in the unikernel serves curl, in a namespace the test creates, over a TAP."""

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
from hvt_support import ROOT, UNIK, needs_build_tools, needs_kvm

HOST, UNIK_ADDR = "10.79.0.1", "10.79.0.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=15)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace holding a TAP ``hvt0`` (with a virtio-net header) and the host's address."""
    needs_kvm()
    needs_build_tools()
    require("ip", "curl")
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        pytest.skip("a TAP in a network namespace needs root and /dev/net/tun")
    name = f"unikhvthttp{os.getpid()}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "tuntap", "add", "dev", "hvt0", "mode", "tap", "vnet_hdr")
        ip("-n", name, "addr", "add", f"{HOST}/24", "dev", "hvt0")
        ip("-n", name, "link", "set", "hvt0", "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=15)


def test_examples_http_answers_curl(tmp_path: Path, namespace: str) -> None:
    app = tmp_path / "http"
    shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt", f"--ipv4={UNIK_ADDR}/24"], cwd=app, check=True,
                   timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=120)
    manifest = (app / "dist" / "http-hvt" / "manifest.json").read_text()
    assert '"name": "service"' in manifest and '"NET_BASIC"' in manifest
    server = subprocess.Popen(["ip", "netns", "exec", namespace, UNIK, "run", "--net", "service=hvt0"],
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
        assert server.wait(timeout=30) in (128 + signal.SIGTERM, 143)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


def test_an_undeclared_or_missing_device_is_refused(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = tmp_path / "http"
    shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt"], cwd=app, check=True, timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=120)
    proc = subprocess.run([UNIK, "run"], cwd=app, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "give it with --net service=TAP" in proc.stderr
    proc = subprocess.run([UNIK, "run", "--net", "service=hvt9", "--net", "other=hvt8"], cwd=app,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "'other' is not a device of this application (it has: service)" in proc.stderr
