"""Applications served by unik (``[tool.unik] asgi``/``aiohttp``) for the suites that run them.

Three real applications on real libraries, which pip installs into their artifacts:

* ``starlette``: a Starlette application under uvicorn (``/`` text, ``/json``), and the
  same under hypercorn (``hyper``);
* ``examples/fastapi``: FastAPI with a pydantic model and a background task;
* ``aiohttp``: an aiohttp ``web.Application`` made by a function, with a websocket echo.

And the kernel-side clients that drive them: curl, and aiohttp's websocket client.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from example_support import copy_example

STARLETTE_APP = '''\
"""A Starlette application: text, JSON and a path parameter."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello from starlette\\n")


async def double(request: Request) -> JSONResponse:
    n = int(request.path_params["n"])
    return JSONResponse({"n": n, "double": 2 * n, "client": request.client.host if request.client else None})


app = Starlette(routes=[Route("/", hello), Route("/double/{n:int}", double)])
'''

AIOHTTP_APP = '''\
"""An aiohttp application made by a function: a text page and a websocket that echoes in upper case."""

from aiohttp import WSMsgType, web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello from aiohttp\\n")


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data.upper())
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


def make_app() -> web.Application:
    app = web.Application()
    app.add_routes([web.get("/", hello), web.get("/ws", echo)])
    return app
'''


def _app(dest: Path, name: str, package: str, module: str, key: str, ref: str, deps: list[str]) -> Path:
    root = dest / name
    (root / "src" / package).mkdir(parents=True)
    (root / "src" / package / "__init__.py").write_text("")
    (root / "src" / package / "app.py").write_text(module)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "{name}"
        version = "0.1.0"
        dependencies = {json.dumps(deps)}

        [tool.unik]
        {key} = "{ref}"
    """))
    return root


def starlette_app(dest: Path) -> Path:
    """The Starlette application under uvicorn, in ``dest/starlette``."""
    return _app(dest, "starlette", "star_app", STARLETTE_APP, "asgi", "star_app.app:app", ["starlette", "uvicorn"])


def hypercorn_app(dest: Path) -> Path:
    """The Starlette application under hypercorn (``server = "hypercorn"`` for every target), in ``dest/hyper``."""
    root = _app(dest, "hyper", "hyper_app", STARLETTE_APP, "asgi", "hyper_app.app:app", ["starlette", "hypercorn"])
    with (root / "pyproject.toml").open("a") as f:
        for target in ("unix", "spt", "virtio", "xen"):
            f.write(f'\n[tool.unik.targets.{target}]\nserver = "hypercorn"\n')
    return root


def aiohttp_app(dest: Path) -> Path:
    """The aiohttp application with its websocket, in ``dest/wsapp``."""
    return _app(dest, "wsapp", "ws_app", AIOHTTP_APP, "aiohttp", "ws_app.app:make_app", ["aiohttp"])


def fastapi_app(dest: Path) -> Path:
    """A copy of examples/fastapi under ``dest``."""
    return copy_example("fastapi", dest)


def in_netns(netns: str | None, cmd: list[str]) -> list[str]:
    """``cmd`` run in the network namespace ``netns`` (``None``: this one)."""
    return ["ip", "netns", "exec", netns, *cmd] if netns else cmd


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM ``proc`` if it runs (a `unik run`: it stops its guest gracefully), SIGKILL after ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_serving(proc: subprocess.Popen[str], timeout: float, what: str = "the guest",
                 prefix: str = "serving") -> list[str]:
    """The console of ``proc`` up to its first line starting with ``prefix`` (bounded by ``timeout``)."""
    assert proc.stdout is not None
    console: list[str] = []
    deadline = time.monotonic() + timeout
    while not (console and console[-1].startswith(prefix)):
        line = proc.stdout.readline()
        assert line and time.monotonic() < deadline, f"{what} never served:\n" + "".join(console)
        console.append(line)
    return console


@contextmanager
def serving(cmd: list[str], cwd: Path, timeout: float, netns: str | None = None, what: str = "the guest",
            prefix: str = "serving") -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``cmd`` (a `unik run`) in ``netns``, once its console says it serves: it and its console; stopped on exit."""
    proc = subprocess.Popen(in_netns(netns, cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        yield proc, wait_serving(proc, timeout, what, prefix)
    finally:
        stop(proc)


def curl_while_starting(url: str, *args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    """curl ``url``, again (10 tries, 1 s apart) while the connection is refused, empty or reset."""
    for _ in range(10):
        page = subprocess.run(in_netns(netns, ["curl", "-sS", "--max-time", "20", *args, url]),
                              capture_output=True, text=True)
        if page.returncode not in (7, 52, 56):  # refused, empty reply, reset: the guest is still starting
            break
        time.sleep(1.0)
    return page


def curl(url: str, *args: str, timeout: float = 20, netns: str | None = None) -> str:
    """The body curl gets from ``url`` (it fails on an HTTP error), from the namespace ``netns``."""
    proc = subprocess.run(in_netns(netns, ["curl", "-sS", "--fail-with-body", "-m", str(timeout), *args, url]),
                          capture_output=True, text=True, timeout=timeout + 5)
    assert proc.returncode == 0, f"curl {url}: {proc.returncode} {proc.stderr} {proc.stdout}"
    return proc.stdout


def wait_http(url: str, deadline_s: float, alive: object = None, netns: str | None = None) -> None:
    """Poll ``url`` with curl until it answers (bounded by ``deadline_s``; ``alive()`` false stops early)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if callable(alive) and not alive():
            raise AssertionError(f"the server exited before {url} answered")
        proc = subprocess.run(in_netns(netns, ["curl", "-s", "-o", "/dev/null", "-m", "3", url]),
                              capture_output=True, timeout=10)
        if proc.returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {deadline_s:.0f} s")


def fastapi_checks(base: str, netns: str | None = None) -> None:
    """Drive examples/fastapi: JSON, a pydantic-validated body (and a refused one), the background task."""
    assert json.loads(curl(f"{base}/", netns=netns)) == {"hello": "unik", "server": "uvicorn"}
    body = json.loads(curl(f"{base}/orders", "-H", "content-type: application/json",
                           "-d", '{"name": "tea", "price": 2.5, "quantity": 2}', netns=netns))
    assert body == {"name": "tea", "total": 5.0}
    proc = subprocess.run(in_netns(netns, [
        "curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/orders",
        "-H", "content-type: application/json", "-d", '{"name": "tea", "quantity": 0}']),
        capture_output=True, text=True, timeout=30)
    assert proc.stdout == "422", proc
    assert json.loads(curl(f"{base}/orders", netns=netns)) == [{"name": "tea", "quantity": 2}]


def websocket_exchange_in(netns: str, url: str, texts: list[str], timeout: float = 30) -> list[str]:
    """:func:`websocket_exchange` from a process in the network namespace ``netns``."""
    code = (f"import json, served_support; "
            f"print(json.dumps(served_support.websocket_exchange({url!r}, {texts!r}, {timeout!r})))")
    proc = subprocess.run(in_netns(netns, [sys.executable, "-c", code]), capture_output=True, text=True,
                          timeout=timeout + 30, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def websocket_exchange(url: str, texts: list[str], timeout: float = 30) -> list[str]:
    """Send ``texts`` over a websocket to ``url`` (aiohttp's client, on the kernel's sockets); the replies."""
    import aiohttp

    async def talk() -> list[str]:
        replies: list[str] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.ws_connect(url) as ws:
            for text in texts:
                await ws.send_str(text)
                reply = await ws.receive_str()
                assert isinstance(reply, str)  # aiohttp types it str | bytes
                replies.append(reply)
            await ws.send_bytes(b"\x01\x02\x03")
            assert await ws.receive_bytes() == b"\x03\x02\x01"
        return replies

    return asyncio.run(talk())
