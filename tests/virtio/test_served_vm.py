"""Served applications in a virtio VM (QEMU TCG) on unik's own TCP/IP stack, on QEMU's user network.

Starlette under uvicorn and under hypercorn, examples/fastapi (pydantic-core and httptools: C extensions in
the image) and an aiohttp application with a websocket, each built once into an image
(gzip: quicker to build than zstd, for the test), booted, and driven by curl and
aiohttp's websocket client through the port QEMU publishes on 127.0.0.1.  A stop
presses the power button: uvicorn shuts down gracefully and the VM exits 143.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
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
from vm_support import RUN_TIMEOUT_S, UNIK

pytestmark = [pytest.mark.slow, needs("curl"), pytest.mark.timeout(1200)]
APPS: dict[str, Callable[[Path], Path]] = {"starlette": starlette_app, "fastapi": fastapi_app,
                                           "aiohttp": aiohttp_app, "hypercorn": hypercorn_app}
GUEST_PORT = {"starlette": 8000, "fastapi": 8000, "aiohttp": 8080, "hypercorn": 8000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def images(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``images(name)``: the application configured for virtio on the user network and built (once)."""
    base = tmp_path_factory.mktemp("served-vm")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            root = APPS[name](base)
            for args in (["configure", "-t", "virtio", "--net", "service=user", "--initramfs-compression", "gzip"],
                         ["build"]):
                proc = subprocess.run([UNIK, *args], cwd=root, capture_output=True, text=True, timeout=900)
                assert proc.returncode == 0, f"unik {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
            built[name] = root
        return built[name]

    return get


@contextmanager
def _booted(root: Path, guest_port: int) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    port = _free_port()
    log = root / f"vm-{port}.log"
    with log.open("w") as out:
        vm = subprocess.Popen([UNIK, "run", "--accel", "tcg", "--publish", f"127.0.0.1:{port}:{guest_port}"],
                              cwd=root, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/", RUN_TIMEOUT_S, alive=lambda: vm.poll() is None)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{log.read_text()}") from None
        yield f"http://127.0.0.1:{port}", vm, log
    finally:
        stop(vm, timeout=60)


def test_starlette_under_uvicorn_in_a_vm(images: Callable[[str], Path]) -> None:
    with _booted(images("starlette"), GUEST_PORT["starlette"]) as (base, vm, log):
        assert curl(f"{base}/") == "hello from starlette\n"
        reply = json.loads(curl(f"{base}/double/21"))
        assert reply["double"] == 42 and reply["client"] == "10.0.2.2"  # QEMU's user-network gateway
        vm.send_signal(signal.SIGTERM)  # the power button
        assert vm.wait(timeout=60) == 143
    text = log.read_text()
    assert "Uvicorn running on http://10.0.2.15:8000" in text and '"GET /double/21 HTTP/1.1" 200' in text
    assert "Application shutdown complete" in text


def test_starlette_under_hypercorn_in_a_vm(images: Callable[[str], Path]) -> None:
    with _booted(images("hypercorn"), GUEST_PORT["hypercorn"]) as (base, vm, log):
        assert curl(f"{base}/") == "hello from starlette\n"
        assert json.loads(curl(f"{base}/double/4"))["double"] == 8
        vm.send_signal(signal.SIGTERM)
        assert vm.wait(timeout=60) == 143
    text = log.read_text()
    assert "Running on http://10.0.2.15:8000" in text and '"GET /double/4 1.1" 200' in text, text


def test_fastapi_example_in_a_vm(images: Callable[[str], Path]) -> None:
    root = images("fastapi")
    manifest = json.loads((root / "dist" / "fastapi-example-virtio" / "artifact.json").read_text())["manifest"]
    assert {"pydantic-core", "httptools", "fastapi", "uvicorn"} <= set(manifest["distributions"])
    with _booted(root, GUEST_PORT["fastapi"]) as (base, _, _):
        fastapi_checks(base)


def test_aiohttp_websocket_in_a_vm(images: Callable[[str], Path]) -> None:
    with _booted(images("aiohttp"), GUEST_PORT["aiohttp"]) as (base, _, _):
        assert curl(f"{base}/") == "hello from aiohttp\n"
        ws = base.replace("http://", "ws://") + "/ws"
        assert websocket_exchange(ws, ["ping", "from the host"]) == ["PING", "FROM THE HOST"]
