"""examples/http under hvt: CPython in the unikernel serves curl, in a namespace the test creates, over a TAP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hvt_support import ROOT, UNIK, needs_build_tools, needs_kvm, needs_tap_guests, tap_guest_namespace
from tap_support import curl_in, netns_with, serving, status_in

HOST, UNIK_ADDR = "10.79.0.1", "10.79.0.2"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace holding a TAP ``hvt0`` (with a virtio-net header) and the host's address."""
    with tap_guest_namespace("unikhvthttp", HOST) as name:
        yield name


@pytest.fixture(scope="module")
def http_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/http configured for hvt at UNIK_ADDR and built (once for the module)."""
    needs_kvm()
    needs_build_tools()
    app = tmp_path_factory.mktemp("hvthttp") / "http"
    shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt", f"--ipv4={UNIK_ADDR}/24"], cwd=app, check=True,
                   timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=120)
    return app


def test_examples_http_answers_curl(http_app: Path, namespace: str) -> None:
    app = http_app
    manifest = (app / "dist" / "http-hvt" / "manifest.json").read_text()
    assert '"name": "service"' in manifest and '"NET_BASIC"' in manifest
    with serving(namespace, app, f"serving on {UNIK_ADDR}:8080", "--net", "service=hvt0", "--profile") as server:
        got = curl_in(namespace, f"http://{UNIK_ADDR}:8080/")
        assert (ROOT / "examples" / "http" / "htdocs" / "index.html").read_text() == got.stdout
        assert status_in(namespace, f"http://{UNIK_ADDR}:8080/nope") == "404"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) in (128 + signal.SIGTERM, 143)
        # frames travel in batches, with the event loop's turns: no exit carried a single frame, and no
        # separate exit polled or read the clock (--profile's hypercalls by kind)
        profile = server.stderr.read() if server.stderr else ""
        calls = dict(re.findall(r"\n  ([a-z ]+) (\d+) \(", profile))
        assert int(calls.get("turn", 0)) > 0, profile
        assert not {"net read", "net write", "poll"} & set(calls) and int(calls.get("clock", 0)) <= 1, profile


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
    needs_tap_guests()
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


# Connections at once, requests on each (keep-alive): every one must be answered with the page.
BURST = r"""
import asyncio, sys
async def client(n):
    r, w = await asyncio.open_connection(sys.argv[1], 8080)
    ok = 0
    for _ in range(n):
        w.write(b"GET / HTTP/1.1\r\nHost: unik\r\n\r\n")
        head = await r.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        ok += head.startswith(b"HTTP/1.1 200") and len(await r.readexactly(length)) == length
    w.close()
    return ok
async def main():
    got = await asyncio.wait_for(asyncio.gather(*(client(int(sys.argv[3])) for _ in range(int(sys.argv[2])))), 60)
    print(sum(got))
asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def monitor_of(pid: int) -> int:
    """The unik-hvt process that ``unik run`` (``pid``) started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text.split(" (", 1)[1].rsplit(")", 1)
        if name == "unik-hvt" and int(rest.split()[1]) == pid:
            return int(stat.parent.name)
    raise AssertionError(f"unik run ({pid}) has no unik-hvt child")


def test_a_burst_of_parallel_requests_is_answered_and_an_idle_guest_sleeps(http_app: Path, namespace: str) -> None:
    with serving(namespace, http_app, f"serving on {UNIK_ADDR}:8080", "--net", "service=hvt0") as server:
        assert curl_in(namespace, f"http://{UNIK_ADDR}:8080/").returncode == 0  # ARP, the first connection
        burst = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", BURST, UNIK_ADDR, "20", "20"],
                               capture_output=True, text=True, timeout=120)
        assert burst.stdout.strip() == "400", burst.stderr
        # idle, the monitor waits in ppoll (the turn's wait): it does not spin
        monitor = monitor_of(server.pid)
        time.sleep(0.5)
        before, start = cpu_seconds(monitor), time.monotonic()
        time.sleep(2)
        share = (cpu_seconds(monitor) - before) / (time.monotonic() - start)
        assert share < 0.3, f"an idle unikernel's monitor used {share:.0%} of a CPU"
        assert curl_in(namespace, f"http://{UNIK_ADDR}:8080/").returncode == 0  # and wakes for the next request
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) in (128 + signal.SIGTERM, 143)
