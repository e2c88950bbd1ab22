"""A busy event loop under hvt: the TAPs are still served, and its turns exit at most once per coalescing
period (runtime.c's HVT_COALESCE_NS) instead of at every poll asyncio makes; unik's accelerators are C there."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hvt_support import UNIK, tap_guest_namespace
from tap_support import curl_in, serving

HOST, GUEST = "10.79.2.1", "10.79.2.2"
COALESCE_S = 100e-6  # runtime.c's HVT_COALESCE_NS

APP = '''
import asyncio
from unik.accel import twins
from unik.devices import Console, Stack

async def answer(reader, writer):
    await reader.readuntil(b"\\r\\n\\r\\n")
    writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\n\\r\\nok\\n")
    await writer.drain()
    writer.close()

async def spin():
    while True:  # always a ready callback: asyncio polls without waiting, forever
        await asyncio.sleep(0)

async def start(stack: Stack, console: Console) -> None:
    busy = asyncio.get_running_loop().create_task(spin())
    server = await stack.tcp.start_server(answer, 8080)
    console.log(f"serving on {stack.ipv4.address}:8080")
    console.log("accelerators " + " ".join(f"{name}={pair.implementation()}" for name, pair in sorted(twins().items())))
    try:
        await server.serve_forever()
    finally:
        busy.cancel()
'''


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace holding a TAP ``hvt0`` (with a virtio-net header) at HOST."""
    with tap_guest_namespace("unikhvtbusy", HOST) as name:
        yield name


def test_a_busy_loop_is_served_and_its_turns_are_coalesced(tmp_path: Path, namespace: str) -> None:
    app = tmp_path / "busy"
    (app / "src" / "busy").mkdir(parents=True)
    (app / "src" / "busy" / "__init__.py").write_text(APP)
    (app / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=68", "unik-core"]\n'
                                        'build-backend = "unik.build_meta"\n\n[project]\nname = "busy"\n'
                                        'version = "0.1.0"\nrequires-python = ">=3.10"\n\n'
                                        '[tool.unik]\nmain = "busy:start"\n')
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt", f"--ipv4={GUEST}/24"], cwd=app, check=True, timeout=60)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=120)
    with serving(namespace, app, f"serving on {GUEST}:8080", "--net", "service=hvt0", "--profile") as server:
        # unik's C accelerators are the C modules built into the ELF, not their pure-Python twins
        assert server.stdout is not None
        accelerators = dict(pair.split("=") for pair in server.stdout.readline().split()[1:])
        assert {"unik_tcpip._fastpath", "unik_tcpip._checksum", "unik_tcpip.tcp._predict",
                "unik_fdio._tap"} <= set(accelerators), accelerators
        assert set(accelerators.values()) == {"c"}, accelerators
        for _ in range(5):  # frames still come in and go out while the loop never waits
            got = curl_in(namespace, f"http://{GUEST}:8080/")
            assert got.stdout == "ok\n", got.stderr
        time.sleep(1)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) in (128 + signal.SIGTERM, 143)
        profile = server.stderr.read() if server.stderr else ""
    looking = re.search(r"\d+ turns of the event loop \(one exit each\), (\d+) of them only looking", profile)
    guest = re.search(r"([\d.]+) ms in the guest", profile)
    assert looking and guest, profile
    # a poll that does not wait exits only once the last exit is a coalescing period old; without
    # that, a spinning loop exits at every poll (10,000-20,000 a second here)
    assert int(looking.group(1)) <= float(guest.group(1)) / 1000 / COALESCE_S + 1, profile
