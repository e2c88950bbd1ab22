"""Served applications on unik's own TCP/IP stack over a TAP: the unix target, and spt (Starlette, aiohttp).

Each application runs in a network namespace of its own, on the TAP ``--net
service=auto`` makes there (its kernel side gets the subnet's first address); curl and
aiohttp's websocket client, run in the namespace, drive it through the kernel's TCP/IP.
uvicorn and aiohttp listen through unik's event loop (``loop.create_server`` on unik's
stack), unmodified; hypercorn binds a socket of unik's stack first and hands it to
``create_server(sock=...)``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
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
    wait_http,
    websocket_exchange_in,
)
from unik.testing import network_namespace, tap_unavailable

pytestmark = [needs("curl"), pytest.mark.timeout(900)]
APPS: dict[str, Callable[[Path], Path]] = {"starlette": starlette_app, "fastapi": fastapi_app,
                                           "aiohttp": aiohttp_app, "hypercorn": hypercorn_app}
PORT = 8000


def _unik(*args: str, cwd: Path) -> None:
    proc = subprocess.run([UNIK, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"unik {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _spt_missing() -> str | None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "solo5"))
    try:
        from solo5_support import missing  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return missing()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``apps(name, target)``: the application configured for unik's stack on ``target`` and built (once)."""
    base = tmp_path_factory.mktemp("served-tap")
    built: dict[tuple[str, str], Path] = {}

    def get(name: str, target: str) -> Path:
        if (name, target) not in built:
            root = APPS[name](base / target)
            _unik("configure", "-t", target, "--net", "service=auto", "--ipv4", "10.99.0.2/24", cwd=root)
            _unik("build", cwd=root)
            built[name, target] = root
        return built[name, target]

    return get


@contextmanager
def _serving(root: Path, target: str) -> Iterator[tuple[str, str, Path]]:
    """The application running in a namespace of its own: (namespace, its base URL, its console log)."""
    why = tap_unavailable() or (_spt_missing() if target == "spt" else None)
    if why:
        pytest.skip(why)
    prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    with network_namespace("unik-served") as netns:
        log = root / f"{target}-{netns}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", netns, UNIK, "run", "-t", target, "--net", "service=auto",
                                     f"--ipv4={prefix}.2/24", "--port", str(PORT)], cwd=root, stdout=out,
                                    stderr=subprocess.STDOUT)
        base = f"http://{prefix}.2:{PORT}"
        try:
            wait_http(f"{base}/", 120, alive=lambda: proc.poll() is None, netns=netns)
            yield netns, base, log
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 143, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("target", ["unix", "spt"])
def test_starlette_under_uvicorn_on_unik_stack(apps: Callable[[str, str], Path], target: str) -> None:
    with _serving(apps("starlette", target), target) as (netns, base, log):
        assert curl(f"{base}/", netns=netns) == "hello from starlette\n"
        client = base.split("//")[1].rsplit(".", 1)[0] + ".1"  # the TAP's kernel side
        assert json.loads(curl(f"{base}/double/21", netns=netns)) == {"n": 21, "double": 42, "client": client}
    text = log.read_text()
    assert f"Uvicorn running on {base}" in text and f'{client}:' in text and '"GET /double/21 HTTP/1.1" 200' in text


@pytest.mark.parametrize("target", ["unix", "spt"])
def test_starlette_under_hypercorn_on_unik_stack(apps: Callable[[str, str], Path], target: str) -> None:
    """hypercorn binds its socket before serving it: a socket of unik's stack, which the unik loop listens on."""
    with _serving(apps("hypercorn", target), target) as (netns, base, log):
        assert curl(f"{base}/", netns=netns) == "hello from starlette\n"
        client = base.split("//")[1].rsplit(".", 1)[0] + ".1"
        assert json.loads(curl(f"{base}/double/8", netns=netns)) == {"n": 8, "double": 16, "client": client}
    text = log.read_text()
    assert f"Running on {base}" in text and '"GET /double/8 1.1" 200' in text, text


@pytest.mark.parametrize("target", ["unix", "spt"])
def test_fastapi_on_unik_stack(apps: Callable[[str, str], Path], target: str) -> None:
    with _serving(apps("fastapi", target), target) as (netns, base, _):
        fastapi_checks(base, netns=netns)


@pytest.mark.parametrize("target", ["unix", "spt"])
def test_aiohttp_websocket_on_unik_stack(apps: Callable[[str, str], Path], target: str) -> None:
    with _serving(apps("aiohttp", target), target) as (netns, base, log):
        assert curl(f"{base}/", netns=netns) == "hello from aiohttp\n"
        ws = base.replace("http://", "ws://") + "/ws"
        assert websocket_exchange_in(netns, ws, ["ping", "over unik"]) == ["PING", "OVER UNIK"]
    assert "serving on" in log.read_text()
