"""Served applications on the unix target, on the host's sockets (``--net socket``): no root needed.

Starlette under uvicorn, examples/fastapi (a pydantic model, a background task) and an
aiohttp application with a websocket, each built once with its dependencies installed
by pip, run by `unik run`, driven by curl and aiohttp's websocket client, and stopped
by SIGTERM: the server closes gracefully (the ASGI lifespan's shutdown) and exits 143.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_support import UNIK
from host_tools import needs
from served_support import (
    aiohttp_app,
    curl,
    fastapi_app,
    fastapi_checks,
    hypercorn_app,
    starlette_app,
    stop,
    wait_http,
    websocket_exchange,
)

pytestmark = [needs("curl"), pytest.mark.timeout(600)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unik(*args: str, cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run([UNIK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"unik {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """The three applications, configured for unix on the host's sockets and built: root, build output."""
    base = tmp_path_factory.mktemp("served")
    out = {}
    for name, make in (("starlette", starlette_app), ("fastapi", fastapi_app), ("aiohttp", aiohttp_app),
                       ("hypercorn", hypercorn_app)):
        root = make(base)
        _unik("configure", "-t", "unix", "--net", "socket", "--ipv4", "127.0.0.1/8", cwd=root)
        out[name] = (root, _unik("build", cwd=root))
    return out


@contextmanager
def _running(root: Path, port: int, *args: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    log = root / f"run-{port}.log"
    with log.open("w") as f:
        proc = subprocess.Popen([UNIK, "run", "--port", str(port), *args], cwd=root, stdout=f,
                                stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/", 60, alive=lambda: proc.poll() is None)
        yield proc, log
    finally:
        stop(proc)


def test_starlette_under_uvicorn(built: dict[str, tuple[Path, str]]) -> None:
    root, output = built["starlette"]
    assert "starlette" in output and "uvicorn" in output and "total" in output  # the size report
    port = _free_port()
    with _running(root, port) as (proc, log):
        assert curl(f"http://127.0.0.1:{port}/") == "hello from starlette\n"
        assert json.loads(curl(f"http://127.0.0.1:{port}/double/21")) == {"n": 21, "double": 42,
                                                                         "client": "127.0.0.1"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    text = log.read_text()
    assert f"Uvicorn running on http://127.0.0.1:{port}" in text
    assert '"GET /double/21 HTTP/1.1" 200' in text  # the access log, on the console
    assert "Application shutdown complete" in text


def test_fastapi_example(built: dict[str, tuple[Path, str]]) -> None:
    root, output = built["fastapi"]
    for dist in ("pydantic-core", "httptools", "fastapi"):
        assert dist in output
    manifest = json.loads((root / "dist" / "fastapi-example-unix" / "artifact.json").read_text())
    sizes = manifest["manifest"]["distributions"]
    assert sizes["pydantic-core"]["bytes"] > 1_000_000  # the C extension, built for this CPython
    with zipfile.ZipFile(root / "dist" / "fastapi-example-unix" / "fastapi-example.pyz") as zf:
        assert any(n.startswith("payload/pydantic_core/_pydantic_core.") and n.endswith(".so") for n in zf.namelist())
    port = _free_port()
    with _running(root, port):
        fastapi_checks(f"http://127.0.0.1:{port}")


def test_aiohttp_with_websocket(built: dict[str, tuple[Path, str]]) -> None:
    root, _ = built["aiohttp"]
    port = _free_port()
    with _running(root, port) as (_, log):
        assert curl(f"http://127.0.0.1:{port}/") == "hello from aiohttp\n"
        assert websocket_exchange(f"ws://127.0.0.1:{port}/ws", ["ping", "unik"]) == ["PING", "UNIK"]
    assert '"GET / HTTP/1.1" 200' in log.read_text()


def test_workers_refused_with_the_reason(built: dict[str, tuple[Path, str]]) -> None:
    root, _ = built["starlette"]
    proc = subprocess.run([UNIK, "run", "--workers", "4"], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--workers" in proc.stderr and "one process" in proc.stderr, proc.stderr


def test_starlette_under_hypercorn_on_the_host_sockets(built: dict[str, tuple[Path, str]]) -> None:
    root, output = built["hypercorn"]
    assert "hypercorn" in output and "uvicorn" not in output
    port = _free_port()
    with _running(root, port) as (_, log):
        assert curl(f"http://127.0.0.1:{port}/") == "hello from starlette\n"
        assert json.loads(curl(f"http://127.0.0.1:{port}/double/4"))["double"] == 8
    assert f"Running on http://127.0.0.1:{port}" in log.read_text() and '"GET /double/4 1.1" 200' in log.read_text()


def test_access_log_off(built: dict[str, tuple[Path, str]]) -> None:
    root, _ = built["starlette"]
    port = _free_port()
    with _running(root, port, "--access-log", "false") as (_, log):
        assert curl(f"http://127.0.0.1:{port}/double/5")
    text = log.read_text()
    assert "Uvicorn running on" in text and "GET /double/5" not in text
