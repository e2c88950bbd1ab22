"""How fast is unik's TCP/IP stack? Bulk TCP and HTTP over a TAP, with the Linux kernel as the peer.

In one run, each figure next to its peers:

* ``unik.send_gbps`` / ``unik.recv_gbps``: 256 MiB over one TCP connection between unik's
  stack (this process, on a TAP with virtio-net offloads: TSO and checksum offload on
  send, GRO on receive) and a Python socket in a network namespace holding the TAP's
  kernel side; the receiver checks a SHA-256 of everything.  ``unik.*_no_offload_*``:
  the same without offloads (every segment built and checksummed by unik).
* ``unik.http_rps``: ``wrk -t1 -c10 -d5s`` from the namespace against ``examples/http``
  on unik's stack; ``peers.kernel_asyncio.http_rps``: the same application on the
  kernel's stack (unik's socket stack, i.e. asyncio) on 127.0.0.1.
* ``peers.kernel_veth.send_gbps``: the ceiling: Python sockets between two namespaces
  over a veth pair, kernel to kernel.
* ``peers.pytcp.send_gbps``: PyTCP (PyPI ``pmd-pytcp``) — not wired in yet: ``null``
  with the reason in ``notes``.

Needs root, /dev/net/tun, iproute2 and wrk; without them it says what is missing and
exits 0 without touching the results file.

    python bench/tcpip.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import RESULTS, machine, table

REPO = Path(__file__).resolve().parent.parent
PREFIX = "10.213.7"
HOST, UNIK = f"{PREFIX}.1", f"{PREFIX}.2"

SINK = r"""
import hashlib, socket, sys
host, port, mode, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
srv = socket.create_server((host, port))
srv.settimeout(60)
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(60)
if mode == "sink":
    h, n = hashlib.sha256(), 0
    while chunk := conn.recv(1 << 20):
        h.update(chunk)
        n += len(chunk)
    conn.sendall(f"{n} {h.hexdigest()}".encode())
else:
    block = bytes(range(256)) * 4096
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        conn.sendall(piece)
        sent += len(piece)
conn.shutdown(socket.SHUT_WR)
conn.recv(1)
conn.close()
"""

VETH_SEND = r"""
import socket, sys, time
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(100):
    try:
        s = socket.create_connection((host, port))
        break
    except OSError:
        time.sleep(0.05)
block = b"\x5a" * (1 << 20)
start = time.perf_counter()
sent = 0
while sent < size:
    s.sendall(block)
    sent += len(block)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(time.perf_counter() - start)
"""

VETH_RECV = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
conn, _ = srv.accept()
while conn.recv(1 << 20):
    pass
conn.close()
"""


def missing() -> str | None:
    """Why this benchmark cannot run here, or ``None``."""
    if os.geteuid() != 0:
        return "needs root for TAP devices and network namespaces"
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR))
    except OSError as exc:
        return f"needs /dev/net/tun ({exc.strerror})"
    for tool in ("ip", "wrk"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (apt-get install {'iproute2' if tool == 'ip' else tool})"
    return None


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


async def start_in(ns: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def bulk(stack: Any, ns: str, size: int, send: bool, port: int) -> float:
    """Gbit/s of one transfer of ``size`` bytes, unik sending (``send``) or receiving."""
    peer = await start_in(ns, sys.executable, "-c", SINK, HOST, str(port), "sink" if send else "source",
                          str(size))
    assert peer.stdout is not None
    await asyncio.wait_for(peer.stdout.readline(), 10)
    reader, writer = await stack.tcp.connect(HOST, port)
    start = time.perf_counter()
    if send:
        block = bytes(range(256)) * 4096
        want = hashlib.sha256()
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            writer.write(piece)
            want.update(piece)
            sent += len(piece)
            await writer.drain()
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 120)
        elapsed = time.perf_counter() - start
        if answer.decode() != f"{size} {want.hexdigest()}":
            raise RuntimeError(f"the kernel received something else: {answer!r}")
    else:
        n = 0
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 60):
            n += len(chunk)
        elapsed = time.perf_counter() - start
        if n != size:
            raise RuntimeError(f"received {n} of {size} bytes")
    writer.close()
    await peer.wait()
    return size * 8 / elapsed / 1e9


async def wrk(url: str, ns: str | None, seconds: int) -> float:
    """Requests per second that ``wrk -t1 -c10`` reports."""
    cmd = ["wrk", "-t1", "-c10", f"-d{seconds}s", url]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.decode())
    if proc.returncode or not match:
        raise RuntimeError(f"wrk failed: {out.decode()} {err.decode()}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out.decode())
    if errors:
        print(f"  wrk reported: {errors.group(0)}")
    return float(match.group(1))


class _Store:
    """examples/http's htdocs: one small page."""

    def __init__(self) -> None:
        self.page = (REPO / "examples" / "http" / "htdocs" / "index.html").read_bytes()

    async def exists(self, key: str) -> Any:
        from unik.devices import EntryKind
        return EntryKind.VALUE if key == "index.html" else EntryKind.DICTIONARY if key == "" else None

    async def get(self, key: str) -> bytes:
        return self.page


class _Console:
    def log(self, message: str) -> None:
        pass


def http_app() -> Any:
    sys.path.insert(0, str(REPO / "examples" / "http" / "src"))
    import http_app as app
    return app


async def unik_figures(quick: bool, offload: bool) -> dict[str, float]:
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_tcpip.stack import TcpipStack
    from unik_unix.tap import TapNetwork

    ns = f"unik-bench-{secrets.token_hex(3)}"
    ifname = f"ukb{secrets.token_hex(4)}"
    sh("ip", "netns", "add", ns)
    network = await TapNetwork.connect("service", ifname, offload=offload)
    try:
        sh("ip", "link", "set", ifname, "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{HOST}/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                         ipv4=f"{UNIK}/24")
        try:
            size = (64 if quick else 256) << 20
            send = await bulk(stack, ns, size, True, 9000)
            recv = await bulk(stack, ns, size, False, 9001)
            server = asyncio.ensure_future(http_app().start(stack, _Store(), _Console(), port=8080))
            await asyncio.sleep(0.1)
            rps = await wrk(f"http://{UNIK}:8080/", ns, 2 if quick else 5)
            server.cancel()
            return {"send_gbps": round(send, 3), "recv_gbps": round(recv, 3), "http_rps": round(rps, 1)}
        finally:
            await stack.disconnect()
    finally:
        await network.disconnect()
        sh("ip", "netns", "del", ns, check=False)


async def kernel_asyncio_rps(quick: bool) -> float:
    from unik_unix.socket_stack import SocketStack

    stack = await SocketStack.connect("127.0.0.1/8")
    server = asyncio.ensure_future(http_app().start(stack, _Store(), _Console(), port=18080))
    await asyncio.sleep(0.1)
    try:
        return await wrk("http://127.0.0.1:18080/", None, 2 if quick else 5)
    finally:
        server.cancel()
        await stack.disconnect()


def kernel_veth_gbps(quick: bool) -> float:
    """Python sockets across a veth pair between two namespaces."""
    a, b = f"unik-va-{secrets.token_hex(3)}", f"unik-vb-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", a)
    sh("ip", "netns", "add", b)
    try:
        sh("ip", "-n", a, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", b)
        sh("ip", "-n", a, "addr", "add", "10.214.0.1/24", "dev", "v0")
        sh("ip", "-n", b, "addr", "add", "10.214.0.2/24", "dev", "v1")
        sh("ip", "-n", a, "link", "set", "v0", "up")
        sh("ip", "-n", b, "link", "set", "v1", "up")
        size = (1 if quick else 4) << 30
        recv = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", VETH_RECV, "10.214.0.2", "9100"])
        try:
            out = sh("ip", "netns", "exec", a, sys.executable, "-c", VETH_SEND, "10.214.0.2", "9100", str(size))
        finally:
            recv.wait(30)
        return size * 8 / float(out.stdout.strip()) / 1e9
    finally:
        sh("ip", "netns", "del", a, check=False)
        sh("ip", "netns", "del", b, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller transfers, shorter wrk runs")
    args = parser.parse_args()
    why = missing()
    if why:
        print(f"bench/tcpip.py: skipped: {why}")
        return 0
    from unik_tcpip import checksum

    unik = asyncio.run(unik_figures(args.quick, offload=True))
    plain = asyncio.run(unik_figures(args.quick, offload=False))
    unik.update({f"{k.removesuffix('_gbps').removesuffix('_rps')}_no_offload_{k.rsplit('_', 1)[1]}": v
                 for k, v in plain.items()})
    peers: dict[str, dict[str, Any]] = {
        "kernel_asyncio": {"http_rps": round(asyncio.run(kernel_asyncio_rps(args.quick)), 1)},
        "kernel_veth": {"send_gbps": round(kernel_veth_gbps(args.quick), 3)},
        "pytcp": {"send_gbps": None, "recv_gbps": None},
    }
    ratios = {
        "send_vs_kernel_veth": round(unik["send_gbps"] / peers["kernel_veth"]["send_gbps"], 4),
        "http_vs_kernel_asyncio": round(unik["http_rps"] / peers["kernel_asyncio"]["http_rps"], 4),
    }
    notes = {
        "pytcp": "not measured yet: PyPI pmd-pytcp is not wired into this benchmark",
        "checksum": checksum.implementation(),
        "targets": "send >= 1 Gbit/s, recv >= 0.5 Gbit/s, http >= 50 % of asyncio",
    }
    RESULTS.mkdir(exist_ok=True)
    data = {"unik": unik, "peers": peers, "ratios": ratios, "machine": machine(), "accelerator": None,
            "notes": notes}
    (RESULTS / "tcpip.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print("unik's TCP/IP stack over a TAP, the Linux kernel as the peer")
    table([
        ("unik send", f"{unik['send_gbps']:.3f} Gbit/s  ({ratios['send_vs_kernel_veth']:.1%} of kernel veth)"),
        ("unik receive", f"{unik['recv_gbps']:.3f} Gbit/s"),
        ("unik send, no offloads", f"{unik['send_no_offload_gbps']:.3f} Gbit/s"),
        ("unik receive, no offloads", f"{unik['recv_no_offload_gbps']:.3f} Gbit/s"),
        ("unik HTTP, no offloads", f"{unik['http_no_offload_rps']:.0f} req/s"),
        ("kernel veth (ceiling)", f"{peers['kernel_veth']['send_gbps']:.3f} Gbit/s"),
        ("unik HTTP", f"{unik['http_rps']:.0f} req/s  ({ratios['http_vs_kernel_asyncio']:.1%} of asyncio)"),
        ("asyncio + kernel HTTP", f"{peers['kernel_asyncio']['http_rps']:.0f} req/s"),
        ("PyTCP", "not measured yet"),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
