"""A plain asyncio application (asyncio.start_server, no unik API for its network) on every target with a TAP.

The generated main.py runs it on unik's event loop with unik's stack attached, so
``asyncio.start_server`` listens on unik's stack: curl, in the namespace holding the TAP,
gets its page.  The application also reaches for the socket module directly: on the unix
target that is the host's network (here: the namespace's kernel, which refuses the
port), in a VM and under spt it fails at once naming the call and the loop method, and
the application goes on (nothing hangs, nothing is killed).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from example_support import missing_vm_tools, write_app
from host_tools import require

UNIK = str(Path(sys.executable).with_name("unik"))
HOST, GUEST = "10.78.0.1", "10.78.0.2"
RUN_TIMEOUT_S = 240.0

APP = '''\
"""Serves a page with asyncio.start_server; tries the socket module first."""

import asyncio
import socket

from unik.devices import Console, Stack


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\\r\\n\\r\\n")
    body = b"plain asyncio on unik\\n"
    writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def start(stack: Stack, console: Console, *, port: int = 8080, host: str = "10.78.0.1") -> None:
    console.log(f"loop: {type(asyncio.get_running_loop()).__name__}")
    try:
        socket.create_connection((host, 9), timeout=3).close()
        console.log("host socket: connected")
    except Exception as exc:
        console.log(f"host socket: {type(exc).__name__}: {exc}")
    server = await asyncio.start_server(handle, None, port)
    console.log(f"serving on {stack.ipv4.address}:{port}")
    await server.serve_forever()
'''


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=15)


@pytest.fixture
def namespace() -> Iterator[tuple[str, str]]:
    """A namespace holding a persistent TAP (with the host's address): (namespace, TAP)."""
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        pytest.skip("needs root and /dev/net/tun (TAP devices in a namespace)")
    require("ip", "curl")
    name, tap = f"unik-aioapp-{os.getpid()}-{secrets.token_hex(2)}", f"aio{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr")
        _ip("-n", name, "addr", "add", f"{HOST}/24", "dev", tap)
        _ip("-n", name, "link", "set", tap, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield name, tap
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=15)


def _need(target: str) -> None:
    if target == "virtio":
        why = missing_vm_tools()
        if why:
            pytest.skip(f"virtio needs QEMU and apt: {why}")
    if target == "spt":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "solo5"))
        from solo5_support import need_sandbox  # type: ignore[import-not-found]

        need_sandbox()


@pytest.mark.parametrize("target", ["unix", "spt", "virtio"])
def test_plain_asyncio_server_on_unik_s_stack(target: str, namespace: tuple[str, str], tmp_path: Path) -> None:
    _need(target)
    ns, tap = namespace
    app = write_app(tmp_path, "aioapp", APP)
    net = ["--net", f"service={tap}"]
    subprocess.run([UNIK, "-q", "configure", "-t", target, f"--ipv4={GUEST}/24", *([] if target == "spt" else net)],
                   cwd=app, check=True, timeout=120, capture_output=True)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=RUN_TIMEOUT_S, capture_output=True)
    main = (app / "_build" / target / "main.py").read_text()
    assert "EVENT_LOOP = UnikEventLoop" in main
    extra = {"virtio": ["--accel", "tcg"], "spt": net}.get(target, [])
    server = subprocess.Popen(["ip", "netns", "exec", ns, UNIK, "run", *extra], cwd=app, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    console: list[str] = []
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (console and console[-1].startswith("serving on ")):
            line = server.stdout.readline()
            assert line and time.monotonic() < deadline, "the application never served:\n" + "".join(console)
            console.append(line)
        page = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "20", "--retry", "5",
                               "--retry-connrefused", f"http://{GUEST}:8080/"], capture_output=True, text=True,
                              timeout=120)
        assert page.stdout == "plain asyncio on unik\n", page.stderr + "".join(console)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
    text = "".join(console)
    assert "loop: UnikEventLoop\n" in text, text
    [host_socket] = [line for line in console if line.startswith("host socket: ")]
    if target == "unix":
        # The host's network is there: the namespace's kernel answers port 9 with a reset.
        assert host_socket.startswith("host socket: ConnectionRefusedError"), text
    else:
        assert host_socket.startswith(
            f"host socket: HostNetworkUnavailable: socket.getaddrinfo('{HOST}', 9): the {target} target has no "
            "host network;"), text
        assert "asyncio.open_connection / loop.create_connection rather than socket.create_connection" in text
