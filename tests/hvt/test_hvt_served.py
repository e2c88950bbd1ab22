"""A served (ASGI) application under hvt: Starlette under uvicorn in the unikernel answers curl over a TAP."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hvt_support import UNIK, tap_guest_namespace
from served_support import starlette_app
from tap_support import curl_in, serving

HOST, UNIK_ADDR = "10.79.4.1", "10.79.4.2"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace holding a TAP ``hvt0`` (with a virtio-net header) and the host's address."""
    with tap_guest_namespace("unikhvtasgi", HOST) as name:
        yield name


def test_starlette_under_uvicorn_serves_from_the_unikernel_and_stops_gracefully(tmp_path: Path,
                                                                                 namespace: str) -> None:
    app = starlette_app(tmp_path)
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt", f"--ipv4={UNIK_ADDR}/24"], cwd=app, check=True, timeout=120)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=600)
    with serving(namespace, app, "INFO: Started server process [1]", "--net", "service=hvt0") as server:
        got = curl_in(namespace, f"http://{UNIK_ADDR}:8000/")
        assert got.returncode == 0 and got.stdout == "hello from starlette\n", got.stderr
        doubled = json.loads(curl_in(namespace, f"http://{UNIK_ADDR}:8000/double/21").stdout)
        assert doubled == {"n": 21, "double": 42, "client": HOST}
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) in (128 + signal.SIGTERM, 143)
        log = server.stdout.read() if server.stdout else ""
        assert f"INFO: Uvicorn running on http://{UNIK_ADDR}:8000" in log, log
        assert '"GET /double/21 HTTP/1.1" 200' in log and "Application shutdown complete." in log, log
