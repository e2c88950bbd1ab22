"""How fast is unik's TCP/IP stack? Bulk TCP and HTTP over a TAP, with the Linux kernel as the peer.

In one run, each figure next to its peers:

* ``unik.send_gbps`` / ``unik.recv_gbps``: 256 MiB over one TCP connection between unik's
  stack (this process, on a TAP with virtio-net offloads: TSO and checksum offload on
  send, GRO on receive) and a Python socket in a network namespace holding the TAP's
  kernel side.  Both sides check a SHA-256 of everything outside the timed path: the
  kernel's receiver reads into one buffer and answers the end of the data before
  hashing it; unik's receiver is a plain ``asyncio.Protocol`` keeping the chunks.  ``unik.*_no_offload_*``:
  the same without offloads (every segment built and checksummed by unik).
* ``unik.http_rps`` (and ``http_c100_rps``): ``wrk -t1 -c10 -d3s`` (``-c100``) from the
  namespace against ``examples/http`` on unik's stack; ``peers.kernel_asyncio.http_rps``: the same application on the
  kernel's stack (unik's socket stack, i.e. asyncio) on 127.0.0.1.  Both servers run in
  this process and wrk alternates between them for several rounds (A/B, B/A, ...); the
  figures are the medians and the ratio is the median of the rounds' ratios, so that a
  busy neighbour on a shared machine moves both sides of a round alike.  The CPU time
  this process spends per request (``*_cpu_us_per_request``) is printed beside them: it
  hardly depends on what else the machine is doing.
* ``vm``: the VM section (:mod:`tcpip_vm`, also a script of its own): ``examples/http`` in a
  virtio guest under QEMU TCG on unik's stack against the same ``http_app`` on the guest
  kernel's sockets, wrk ``-c10``/``-c100`` and a bulk download, both guests measured
  alternately (``--no-vm`` leaves it out).
* ``peers.kernel_veth.send_gbps``: the ceiling: Python sockets between two namespaces
  over a veth pair, kernel to kernel.
* ``peers.pytcp.send_gbps`` / ``recv_gbps``: PyTCP (PyPI ``pytcp``, a pure-Python stack on
  its own TAP, as shipped, in a subprocess with a time limit) against the same kernel
  peer; ``null`` with the reason in ``notes`` when it cannot run.

Needs root, /dev/net/tun, iproute2 and wrk; without them it says what is missing and
exits 0 without touching the results file.

    python bench/tcpip.py [--quick] [--rounds N] [--no-vm]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import resource
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests" / "tcpip"))  # the kernel suites' SINK

from benchlib import RESULTS, machine, table, tap_missing
from kernel_support import SINK
from kernel_support import SOURCE_BLOCK as BLOCK

REPO = Path(__file__).resolve().parent.parent
PREFIX = "10.213.7"
HOST, UNIK = f"{PREFIX}.1", f"{PREFIX}.2"


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


PYTCP_PEER = r"""
import os, sys, time
from pytcp import config
config.LOG_CHANEL = set()
from pytcp import TcpIpStack
from pytcp.lib import socket
ifname, addr, host, port, mode, size = sys.argv[1:4] + [int(sys.argv[4]), sys.argv[5], int(sys.argv[6])]
stack = TcpIpStack(interface=ifname, ip4_address=addr)
print("open", flush=True)
sys.stdin.readline()  # the parent has moved the TAP into the namespace
stack.start()
time.sleep(1)  # PyTCP announces its address (ARP probes) before it can connect
s = socket.socket(family=socket.AF_INET4, type=socket.SOCK_STREAM)
s.connect((host, port))
start, n = time.perf_counter(), 0
if mode == "send":
    block = bytes(range(256)) * 256
    while n < size:
        n += s.send(block[: min(len(block), size - n)])
    print("sent", flush=True)  # into PyTCP's buffer: the kernel side times the transfer
    time.sleep(3600)
while n < size:
    chunk = s.recv()
    if not chunk:
        break
    n += len(chunk)
print(f"received {n} {time.perf_counter() - start}", flush=True)
os._exit(0)
"""

TIMED_SINK = r"""
import socket, sys, time
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
srv.settimeout(60)
conn, _ = srv.accept()
conn.settimeout(60)
start, n = time.perf_counter(), 0
while n < int(sys.argv[3]) and (chunk := conn.recv(1 << 20)):
    n += len(chunk)
print(n, time.perf_counter() - start, flush=True)
"""

SOURCE = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
srv.settimeout(60)
conn, _ = srv.accept()
conn.sendall(bytes(range(256)) * (int(sys.argv[3]) // 256))
conn.shutdown(socket.SHUT_WR)
conn.settimeout(60)
conn.recv(1)
"""


def missing() -> str | None:
    """Why this benchmark cannot run here, or ``None``."""
    return tap_missing("wrk")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


async def start_in(ns: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def pattern_digest(size: int) -> str:
    """The SHA-256 of the ``size`` bytes both directions carry: :data:`BLOCK` repeated."""
    h = hashlib.sha256()
    for at in range(0, size, len(BLOCK)):
        h.update(BLOCK[: min(len(BLOCK), size - at)])
    return h.hexdigest()


class _Collect(asyncio.Protocol):
    """A receiver that keeps what arrives (checked after the clock stops) and says when it ends."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def eof_received(self) -> bool:
        if not self.done.done():
            self.done.set_result(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed before the end of the data"))


async def bulk(stack: Any, ns: str, size: int, send: bool, port: int, host: str = HOST) -> float:
    """Gbit/s of one transfer of ``size`` bytes, unik sending (``send``) or receiving.

    The data's integrity is checked outside the timed path: its digest is computed before
    the clock starts; the kernel side reports the end of the data at once and its digest
    after; unik's receiver keeps the chunks and hashes them once the clock stopped.
    """
    want = pattern_digest(size)
    peer = await start_in(ns, sys.executable, "-c", SINK, host, str(port), "sink" if send else "source",
                          str(size))
    assert peer.stdout is not None
    await asyncio.wait_for(peer.stdout.readline(), 10)
    if send:
        reader, writer = await stack.tcp.connect(host, port)
        start = time.perf_counter()
        view = memoryview(BLOCK)
        sent = 0
        while sent < size:
            piece = view[: min(len(BLOCK), size - sent)]
            writer.write(piece)
            sent += len(piece)
            await writer.drain()
        writer.write_eof()
        end = await asyncio.wait_for(reader.readexactly(1), 120)
        elapsed = time.perf_counter() - start
        answer = end + await asyncio.wait_for(reader.read(), 120)
        if answer.decode() != f"E{size} {want}":
            raise RuntimeError(f"the kernel received something else: {answer!r}")
        writer.close()
    else:
        transport, collect = await stack.tcp.create_connection(_Collect, host, port)
        start = time.perf_counter()
        await asyncio.wait_for(collect.done, 120)
        elapsed = time.perf_counter() - start
        h = hashlib.sha256()
        for chunk in collect.chunks:
            h.update(chunk)
        n = sum(map(len, collect.chunks))
        if (n, h.hexdigest()) != (size, want):
            raise RuntimeError(f"received {n} of {size} bytes, or other bytes")
        transport.close()
    await peer.wait()
    return size * 8 / elapsed / 1e9


async def wrk(url: str, ns: str | None, seconds: int, conns: int = 10) -> tuple[float, float]:
    """Requests per second that ``wrk -t1 -c<conns>`` reports, and this process's CPU µs per request."""
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", url]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    before = resource.getrusage(resource.RUSAGE_SELF)
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    after = resource.getrusage(resource.RUSAGE_SELF)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.decode())
    count = re.search(r"(\d+) requests in", out.decode())
    if proc.returncode or not match or not count:
        raise RuntimeError(f"wrk failed: {out.decode()} {err.decode()}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out.decode())
    if errors:
        print(f"  wrk reported: {errors.group(0)}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return float(match.group(1)), cpu / max(int(count.group(1)), 1) * 1e6


class _Store:
    """examples/http's htdocs: one small page."""

    def __init__(self) -> None:
        self.page = (REPO / "examples" / "http" / "htdocs" / "index.html").read_bytes()

    async def exists(self, key: str) -> Any:
        from unik.devices import EntryKind
        return EntryKind.VALUE if key == "index.html" else EntryKind.DICTIONARY if key == "" else None

    async def get(self, key: str) -> bytes:
        return self.page

    async def size(self, key: str) -> int:
        return len(self.page)

    async def get_partial(self, key: str, offset: int, length: int) -> bytes:
        return self.page[offset:offset + length]


class _Console:
    def log(self, message: str) -> None:
        pass


def http_app() -> Any:
    sys.path.insert(0, str(REPO / "examples" / "http" / "src"))
    import http_app as app
    return app


async def unik_figures(quick: bool, offload: bool, rounds: int) -> dict[str, Any]:
    """Bulk both ways, then HTTP: wrk alternates ``rounds`` times between unik and asyncio."""
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork
    from unik_tcpip.stack import TcpipStack
    from unik_unix.socket_stack import SocketStack

    ns = f"unik-bench-{secrets.token_hex(3)}"
    ifname = f"ukb{secrets.token_hex(4)}"
    sh("ip", "netns", "add", ns)
    network = await TapNetwork.connect("service", ifname, offload=offload, create=True)
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
            out: dict[str, Any] = {"send_gbps": round(send, 3), "recv_gbps": round(recv, 3)}
            server = asyncio.ensure_future(http_app().start(stack, _Store(), _Console(), port=8080))
            kernel = await SocketStack.connect("127.0.0.1/8")
            kserver = asyncio.ensure_future(http_app().start(kernel, _Store(), _Console(), port=18080))
            await asyncio.sleep(0.1)
            seconds = 2 if quick else 3
            figures: dict[str, list[tuple[float, float]]] = {"unik": [], "kernel": []}
            many: dict[str, list[tuple[float, float]]] = {"unik": [], "kernel": []}
            try:
                for i in range(rounds):
                    # A/B then B/A: neither side always runs first.
                    for side in ("unik", "kernel") if i % 2 == 0 else ("kernel", "unik"):
                        url, where = (f"http://{UNIK}:8080/", ns) if side == "unik" else (
                            "http://127.0.0.1:18080/", None)
                        figures[side].append(await wrk(url, where, seconds))
                        many[side].append(await wrk(url, where, seconds, 100))
            finally:
                server.cancel()
                kserver.cancel()
                await kernel.disconnect()
            unik_runs, kernel_runs = figures["unik"], figures["kernel"]
            out.update({
                "http_rps": round(statistics.median(r for r, _ in unik_runs), 1),
                "http_cpu_us_per_request": round(statistics.median(c for _, c in unik_runs), 1),
                "kernel_asyncio_http_rps": round(statistics.median(r for r, _ in kernel_runs), 1),
                "kernel_asyncio_cpu_us_per_request": round(statistics.median(c for _, c in kernel_runs), 1),
                "http_round_ratios": [round(u[0] / k[0], 3) for u, k in zip(unik_runs, kernel_runs, strict=True)],
                "http_c100_rps": round(statistics.median(r for r, _ in many["unik"]), 1),
                "kernel_asyncio_http_c100_rps": round(statistics.median(r for r, _ in many["kernel"]), 1),
                "http_c100_round_ratios": [round(u[0] / k[0], 3)
                                           for u, k in zip(many["unik"], many["kernel"], strict=True)],
            })
            return out
        finally:
            await stack.disconnect()
    finally:
        await network.disconnect()
        sh("ip", "netns", "del", ns, check=False)


def pytcp_gbps(quick: bool) -> tuple[float | None, float | None, str]:
    """PyTCP sending and receiving over its own TAP, the kernel in a namespace as the peer."""
    try:
        import pytcp  # noqa: F401
    except ImportError:
        return None, None, "PyPI pytcp is not installed (pip install -r requirements-bench.txt)"
    results: list[float | None] = []
    notes: list[str] = []
    size = 1 << 20  # PyTCP moves megabits per second: keep it short
    for mode in ("send", "recv"):
        # PyTCP as shipped sometimes loses a connection under load (its receive side has
        # been seen to close after ~160 KB): up to three attempts, each failure noted.
        for attempt in range(1, 4):
            try:
                results.append(_pytcp_once(mode, size))
                break
            except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as exc:
                notes.append(f"{mode} attempt {attempt}: {type(exc).__name__}: {exc}")
        else:
            results.append(None)
    note = (f"PyPI pytcp {_version('pytcp')} as shipped, {size >> 20} MiB each way, the first of up to 3 "
            "attempts that completes") + ("; " + "; ".join(notes) if notes else "")
    return results[0], results[1], note


def _pytcp_once(mode: str, size: int) -> float:
    """One PyTCP transfer of ``size`` bytes (``mode`` "send" or "recv"); Gbit/s."""
    ns = f"unik-pyt-{secrets.token_hex(3)}"
    ifname = f"ukt{secrets.token_hex(4)}"
    sh("ip", "netns", "add", ns)
    peer: subprocess.Popen[str] | None = None
    proc: subprocess.Popen[str] | None = None
    try:
        proc = subprocess.Popen([sys.executable, "-c", PYTCP_PEER, ifname, f"{PREFIX}.2/24", HOST, "9200",
                                 mode, str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        if proc.stdout.readline().strip() != "open":
            proc.kill()
            raise RuntimeError(f"PyTCP did not open its TAP: {proc.stderr.read()[-400:]}")
        sh("ip", "link", "set", ifname, "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{HOST}/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        script = TIMED_SINK if mode == "send" else SOURCE
        peer = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, HOST, "9200",
                                 str(size)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        proc.stdin.write("\n")
        proc.stdin.flush()
        if mode == "send":
            out, err = peer.communicate(timeout=90)
            n, seconds = out.split()
            if int(n) != size:
                raise RuntimeError(f"the kernel received {n} of {size} bytes from PyTCP {err[-200:]}")
        else:
            out, err = proc.communicate(timeout=90)
            match = re.search(r"received (\d+) ([\d.e-]+)", out)
            if not match or int(match.group(1)) != size:
                raise RuntimeError(f"PyTCP received {out.strip()!r} of {size} bytes {err[-300:]}".strip())
            seconds = match.group(2)
        return size * 8 / float(seconds) / 1e9
    finally:
        for child in (proc, peer):
            if child is not None and child.poll() is None:
                child.kill()
                child.communicate()
        sh("ip", "netns", "del", ns, check=False)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


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
    parser.add_argument("--rounds", type=int, default=0, help="A/B rounds of wrk (default 7, 3 with --quick)")
    parser.add_argument("--no-vm", action="store_true", help="leave out the VM section (bench/tcpip_vm.py)")
    args = parser.parse_args()
    why = missing()
    if why:
        print(f"bench/tcpip.py: skipped: {why}")
        return 0
    from unik_tcpip import checksum, fastpath

    rounds = args.rounds or (3 if args.quick else 7)
    unik = asyncio.run(unik_figures(args.quick, offload=True, rounds=rounds))
    plain = asyncio.run(unik_figures(args.quick, offload=False, rounds=1))
    round_ratios = unik.pop("http_round_ratios")
    c100_ratios = unik.pop("http_c100_round_ratios")
    asyncio_c100 = unik.pop("kernel_asyncio_http_c100_rps")
    asyncio_rps = unik.pop("kernel_asyncio_http_rps")
    asyncio_cpu = unik.pop("kernel_asyncio_cpu_us_per_request")
    unik.update({
        "send_no_offload_gbps": plain["send_gbps"], "recv_no_offload_gbps": plain["recv_gbps"],
        "http_no_offload_rps": plain["http_rps"],
    })
    pytcp_send, pytcp_recv, pytcp_note = pytcp_gbps(args.quick)
    peers: dict[str, dict[str, Any]] = {
        "kernel_asyncio": {"http_rps": asyncio_rps, "http_cpu_us_per_request": asyncio_cpu,
                           "http_c100_rps": asyncio_c100},
        "kernel_veth": {"send_gbps": round(kernel_veth_gbps(args.quick), 3)},
        "pytcp": {"send_gbps": None if pytcp_send is None else round(pytcp_send, 5),
                  "recv_gbps": None if pytcp_recv is None else round(pytcp_recv, 5)},
    }
    ratios: dict[str, float | None] = {
        "send_vs_kernel_veth": round(unik["send_gbps"] / peers["kernel_veth"]["send_gbps"], 4),
        "http_vs_kernel_asyncio": round(statistics.median(round_ratios), 4),
        "http_c100_vs_kernel_asyncio": round(statistics.median(c100_ratios), 4),
        "http_cpu_kernel_asyncio_vs_unik": round(asyncio_cpu / unik["http_cpu_us_per_request"], 4),
        "send_vs_pytcp": None if pytcp_send is None else round(unik["send_gbps"] / pytcp_send, 1),
        "recv_vs_pytcp": None if pytcp_recv is None else round(unik["recv_gbps"] / pytcp_recv, 1),
    }
    notes = {
        "pytcp": pytcp_note,
        "checksum": checksum.implementation(),
        "fastpath": fastpath.implementation(),
        "http": f"median of {rounds} interleaved wrk rounds; per-round unik/asyncio ratios {round_ratios} (-c10), "
                f"{c100_ratios} (-c100)",
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "targets": "issue 17: http >= 100 % of asyncio at -c10 and -c100, send >= 90 % and receive >= 70 % of "
                   "kernel veth, in the VM >= 80 % of the guest kernel's req/s",
    }
    vm = None
    if not args.no_vm:
        import tcpip_vm

        vm = None if tcpip_vm.missing() else tcpip_vm.figures(args.quick, 1 if args.quick else 3)
    RESULTS.mkdir(exist_ok=True)
    data = {"unik": unik, "peers": peers, "ratios": ratios, "machine": machine(), "accelerator": None,
            "notes": notes, "vm": vm}
    (RESULTS / "tcpip.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def times(a: float | None, b: float | None) -> str:
        return f"{a / b:,.0f}x" if a is not None and b else "n/a"

    print("unik's TCP/IP stack over a TAP, the Linux kernel as the peer")
    def gbps(value: float | None) -> str:
        return "failed" if value is None else f"{value:.4f} Gbit/s"

    pytcp_text = "did not run: " + pytcp_note if pytcp_send is None and pytcp_recv is None else (
        f"send {gbps(pytcp_send)}, receive {gbps(pytcp_recv)}  ({pytcp_note})")
    table([
        ("unik send", f"{unik['send_gbps']:.3f} Gbit/s  ({ratios['send_vs_kernel_veth']:.1%} of kernel veth, "
                      f"{times(unik['send_gbps'], pytcp_send)} PyTCP)"),
        ("unik receive", f"{unik['recv_gbps']:.3f} Gbit/s  ({times(unik['recv_gbps'], pytcp_recv)} PyTCP)"),
        ("unik send, no offloads", f"{unik['send_no_offload_gbps']:.3f} Gbit/s"),
        ("unik receive, no offloads", f"{unik['recv_no_offload_gbps']:.3f} Gbit/s"),
        ("kernel veth (ceiling)", f"{peers['kernel_veth']['send_gbps']:.3f} Gbit/s"),
        ("PyTCP", pytcp_text),
        ("unik HTTP", f"{unik['http_rps']:.0f} req/s, {unik['http_cpu_us_per_request']:.1f} µs CPU/request  "
                      f"({ratios['http_vs_kernel_asyncio']:.1%} of asyncio: median of {rounds} A/B rounds "
                      f"{round_ratios})"),
        ("asyncio + kernel HTTP", f"{asyncio_rps:.0f} req/s, {asyncio_cpu:.1f} µs CPU/request"),
        ("unik HTTP -c100", f"{unik['http_c100_rps']:.0f} req/s, asyncio {asyncio_c100:.0f} req/s  "
                            f"({ratios['http_c100_vs_kernel_asyncio']:.1%}: median of {c100_ratios})"),
        ("unik HTTP, no offloads", f"{unik['http_no_offload_rps']:.0f} req/s"),
    ])
    if vm is not None:
        import tcpip_vm

        tcpip_vm.print_table(vm, 1 if args.quick else 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
