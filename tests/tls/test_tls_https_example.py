"""examples/https end to end: built and run by the real `unik` command, checked with curl and testssl.

On the host's sockets (``--net=socket``) and on unik's own TCP/IP stack over a TAP
whose kernel side sits in a network namespace the test creates (root).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from host_tools import require
from tls_support import REPO, UNIK, free_port, sh
from unik.testing import network_namespace, tap_unavailable


def unik(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([UNIK, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode:
        raise AssertionError(f"unik {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def copy_https(dest: Path, *names: str) -> Path:
    app = dest / "https"
    shutil.copytree(REPO / "examples" / "https", app,
                    ignore=shutil.ignore_patterns("_build", "dist", "*.egg-info", "__pycache__", "certs"))
    unik("tls", "selfsigned", "-o", "certs", *(a for n in names for a in ("-n", n)), cwd=app)
    return app


def wait_for(what: str, check: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"unik run exited {proc.returncode} while waiting for {what}:\n{log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


@pytest.fixture(scope="module")
def socket_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """examples/https on the socket stack at 127.0.0.1: (application directory, port)."""
    require("curl")
    app = copy_https(tmp_path_factory.mktemp("https"), "localhost", "127.0.0.1")
    port = free_port()
    unik("configure", "-t", "unix", "--net=socket", "--ipv4=127.0.0.1/8", f"--port={port}", cwd=app)
    unik("build", cwd=app)
    log = app / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([UNIK, "run"], cwd=app, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("the server", lambda: f"serving https on 127.0.0.1:{port}" in log.read_text(), 60, proc, log)
        yield app, port
    finally:
        assert stop(proc) == 128 + signal.SIGTERM, log.read_text()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, timeout=30)


def test_https_on_the_socket_stack_answers_curl(socket_server: tuple[Path, int]) -> None:
    app, port = socket_server
    ca = str(app / "certs" / "cert.pem")
    for host in ("127.0.0.1", "localhost"):
        page = curl("--cacert", ca, f"https://{host}:{port}/")
        assert page.returncode == 0 and "<h1>Hello from unik over TLS</h1>" in page.stdout, page.stderr
    # keep-alive over one TLS connection; HEAD and 404 through the unchanged handler
    both = curl("--cacert", ca, f"https://127.0.0.1:{port}/", f"https://127.0.0.1:{port}/index.html",
                "-w", "%{num_connects} %{ssl_verify_result}\n")
    assert both.stdout.count("over TLS") == 2 and both.stdout.strip().endswith("0 0"), both.stdout
    assert curl("--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{port}/nope").stdout \
        == "404"
    for flags, version in ((["--tlsv1.3"], "TLSv1.3"), (["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2")):
        verbose = curl("--cacert", ca, "-v", "-o", "/dev/null", *flags, f"https://127.0.0.1:{port}/")
        assert verbose.returncode == 0 and f"SSL connection using {version}" in verbose.stderr, verbose.stderr
        assert "ALPN: server accepted http/1.1" in verbose.stderr or "ALPN, server accepted" in verbose.stderr
    # Without the development CA curl refuses, and the server goes on.
    assert curl(f"https://127.0.0.1:{port}/").returncode == 60
    assert curl("--cacert", ca, "--resolve", f"wrong.test:{port}:127.0.0.1",
                f"https://wrong.test:{port}/").returncode == 60
    assert curl("--cacert", ca, f"https://127.0.0.1:{port}/").returncode == 0


def test_testssl_finds_nothing_below_tls12_and_no_weak_cipher(socket_server: tuple[Path, int],
                                                              tmp_path: Path) -> None:
    require("testssl")
    _, port = socket_server
    report = tmp_path / "testssl.json"
    # Protocols, the standard cipher categories and each cipher: about 15 s here.
    scan = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "--fast", "-p", "-s", "-e",
                           "--jsonfile-pretty", str(report), f"127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=240)
    assert report.exists(), scan.stdout + scan.stderr
    result = json.loads(report.read_text())["scanResult"][0]
    protocols = {e["id"]: e["finding"] for e in result["protocols"]}
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert protocols[old] == "not offered", protocols
    assert protocols["TLS1_2"].startswith("offered") and protocols["TLS1_3"].startswith("offered")
    categories = {e["id"]: e["finding"] for e in result["ciphers"]}
    for weak in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"):
        assert categories[f"cipherlist_{weak}"] == "not offered", categories
    offered = [e["finding"] for e in result["cipherTests"]]
    assert offered and all(("ECDH" in f) and ("GCM" in f or "CHACHA20" in f) for f in offered), offered
    worst = {e["severity"] for section in ("protocols", "ciphers", "cipherTests") for e in result[section]}
    assert worst <= {"OK", "INFO"}, worst


@pytest.mark.root
@pytest.mark.skipif(tap_unavailable() is not None, reason=str(tap_unavailable()))
def test_https_on_unik_tcp_over_a_tap(tmp_path: Path) -> None:
    require("curl")
    prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    host, address = f"{prefix}.1", f"{prefix}.2"
    ifname = f"ukt{secrets.token_hex(5)}"
    app = copy_https(tmp_path, address)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    unik("configure", "-t", "unix", "--net", f"service={ifname}", f"--ipv4={address}/24", cwd=app)
    plan = json.loads(unik("query", "plan", cwd=app))
    assert {d["name"]: d["provider"] for d in plan["devices"]}["stack"] == "tcpip.stack"
    unik("build", cwd=app, env=env)
    with network_namespace("unik-tls") as netns:
        sh("ip", "tuntap", "add", ifname, "mode", "tap")  # unik run refuses a TAP that does not exist
        log = tmp_path / "run.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([UNIK, "run"], cwd=app, env=dict(os.environ, **env), stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            wait_for(f"the server to open TAP {ifname}",  # its carrier goes on
                     lambda: "LOWER_UP" in sh("ip", "link", "show", ifname, check=False).stdout,
                     30, proc, log)
            sh("ip", "link", "set", ifname, "netns", netns)
            sh("ip", "-n", netns, "addr", "add", f"{host}/24", "dev", ifname)
            sh("ip", "-n", netns, "link", "set", ifname, "up")
            wait_for("the server", lambda: f"serving https on {address}:8443" in log.read_text(), 30, proc, log)
            ca = str(app / "certs" / "cert.pem")
            page = sh("ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "20", "--retry", "3",
                      "--retry-all-errors", "--cacert", ca, f"https://{address}:8443/", "-w", "%{ssl_verify_result}")
            assert "<h1>Hello from unik over TLS</h1>" in page.stdout and page.stdout.endswith("0"), page.stdout
            both = sh("ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "20", "--cacert", ca,
                     "--tls-max", "1.2", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}",
                     f"https://{address}:8443/", f"https://{address}:8443/missing")
            assert both.stdout == "200 1404 0", both.stdout  # keep-alive: one connection
        finally:
            status = stop(proc)
            sh("ip", "link", "del", ifname, check=False)  # still here only if it never reached the namespace
        assert status == 128 + signal.SIGTERM, log.read_text()


def test_run_time_keys_replace_the_baked_pair(socket_server: tuple[Path, int], tmp_path: Path) -> None:
    app, _ = socket_server
    unik("tls", "selfsigned", "-o", str(tmp_path / "alt"), "-n", "b.test", cwd=tmp_path)
    port = free_port()
    log = tmp_path / "alt.log"
    with open(log, "wb") as out:  # the artifact alone, its keys as options
        proc = subprocess.Popen([str(app / "dist" / "https-unix" / "https.pyz"), f"--port={port}",
                                 f"--tls-cert={tmp_path / 'alt' / 'cert.pem'}",
                                 f"--tls-key={tmp_path / 'alt' / 'key.pem'}"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("the server", lambda: f":{port}" in log.read_text(), 60, proc, log)
        page = curl("--cacert", str(tmp_path / "alt" / "cert.pem"), "--resolve", f"b.test:{port}:127.0.0.1",
                    f"https://b.test:{port}/")
        assert page.returncode == 0 and "over TLS" in page.stdout, page.stderr
    finally:
        stop(proc)
