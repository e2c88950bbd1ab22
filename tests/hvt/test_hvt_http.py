"""examples/http under hvt: CPython in the unikernel serves curl, in a namespace the test creates, over a TAP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import require
from hvt_support import ROOT, UNIK, needs_build_tools, needs_kvm
from tap_support import curl_in, netns_with, serving, status_in, tap_namespace

HOST, UNIK_ADDR = "10.79.0.1", "10.79.0.2"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace holding a TAP ``hvt0`` (with a virtio-net header) and the host's address."""
    needs_kvm()
    needs_build_tools()
    require("ip", "curl")
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        pytest.skip("a TAP in a network namespace needs root and /dev/net/tun")
    with tap_namespace(f"unikhvthttp{os.getpid()}", "hvt0", HOST) as name:
        yield name


def test_examples_http_answers_curl(tmp_path: Path, namespace: str) -> None:
    app = tmp_path / "http"
    shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt", f"--ipv4={UNIK_ADDR}/24"], cwd=app, check=True,
                   timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=120)
    manifest = (app / "dist" / "http-hvt" / "manifest.json").read_text()
    assert '"name": "service"' in manifest and '"NET_BASIC"' in manifest
    with serving(namespace, app, f"serving on {UNIK_ADDR}:8080", "--net", "service=hvt0", "--profile") as server:
        got = curl_in(namespace, f"http://{UNIK_ADDR}:8080/")
        assert (ROOT / "examples" / "http" / "htdocs" / "index.html").read_text() == got.stdout
        assert status_in(namespace, f"http://{UNIK_ADDR}:8080/nope") == "404"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) in (128 + signal.SIGTERM, 143)
        # frames travel in batches: no exit carried a single frame (--profile's hypercalls by kind)
        profile = server.stderr.read() if server.stderr else ""
        calls = dict(re.findall(r"\n  (net [a-z ]+) (\d+) ", profile))
        assert int(calls.get("net read many", 0)) > 0 and int(calls.get("net write many", 0)) > 0, profile
        assert "net read" not in calls and "net write" not in calls, profile


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


def test_auto_makes_the_tap_and_removes_it(tmp_path: Path) -> None:
    """``--net service=auto``: unik makes a TAP with the host's address in the guest's subnet, as on spt and unix."""
    needs_kvm()
    needs_build_tools()
    require("ip", "curl")
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        pytest.skip("a TAP in a network namespace needs root and /dev/net/tun")
    app = tmp_path / "http"
    shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
    guest = "10.79.1.2"
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt", f"--ipv4={guest}/24", "--net", "service=auto"], cwd=app,
                   check=True, timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=120)
    with netns_with(f"unikhvtauto{os.getpid()}", ["link", "set", "lo", "up"]) as ns:
        with serving(ns, app, f"serving on {guest}:8080") as server:
            got = curl_in(ns, f"http://{guest}:8080/")
            assert (ROOT / "examples" / "http" / "htdocs" / "index.html").read_text() == got.stdout
            taps = subprocess.run(["ip", "-n", ns, "-o", "addr", "show"], capture_output=True, text=True).stdout
            assert re.search(r"unik\d+\s+inet 10\.79\.1\.1/24", taps), taps
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) in (128 + signal.SIGTERM, 143)
        links = subprocess.run(["ip", "-n", ns, "-o", "link", "show"], capture_output=True, text=True).stdout
        assert "unik0" not in links, links
