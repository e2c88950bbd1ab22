"""asyncio servers, unchanged, on the unik event loop over a TAP against asyncio's own loop on the kernel's sockets.

The same two servers, written against asyncio alone, run on each side:

* ``http``: an ``asyncio.Protocol`` answering every keep-alive HTTP/1.1 request with a
  small fixed response, measured by ``wrk -t1 -c10`` and ``-c100``;
* ``echo``: ``asyncio.start_server`` echoing what it reads, measured by a client that
  sends 64-byte messages one at a time and waits for each (round trips per second).

``unik``: this process, the servers on ``unik_tcpip.aio.UnikEventLoop`` with unik's stack
on a TAP (offloads on) whose kernel side is in the client namespace.  ``kernel``: a
subprocess running the same servers with ``asyncio.run`` on the kernel's sockets, in a
second namespace joined to the client namespace by a veth pair, so that both paths cross
one virtual link.  The clients (wrk, the echo client) run in the client namespace; the
two sides alternate for several rounds (A/B, B/A...) and each figure is the median, each
ratio the median of the rounds' ratios.  The CPU time of the serving process per request
is given beside (``*_cpu_us_per_request``): on a shared machine it moves much less than
the rates do (the notes keep the load average).

Needs root, /dev/net/tun, iproute2 and wrk; without them it says what is missing and
exits 0 without touching the results file.

    python bench/aio.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
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

from benchlib import tap_missing, unik_kernel_table, veth_between, write

CLIENT_NET, SERVER_NET = "10.213.21", "10.213.22"
HTTP_PORT, ECHO_PORT = 8080, 8081
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n"


class Http(asyncio.Protocol):
    """Answers each request (up to its blank line) with :data:`RESPONSE`, keeping the connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        data = self.pending + data
        count = data.count(b"\r\n\r\n")
        self.pending = data[data.rfind(b"\r\n\r\n") + 4:] if count else data
        if count:
            self.transport.write(RESPONSE * count)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def serve(host: str | None) -> list[asyncio.AbstractServer]:
    """Both servers on the running loop, as any asyncio application would start them."""
    loop = asyncio.get_running_loop()
    return [await loop.create_server(Http, host, HTTP_PORT), await asyncio.start_server(echo, host, ECHO_PORT)]


async def kernel_main(host: str) -> None:
    """The kernel side (a subprocess): asyncio's own loop, the kernel's sockets."""
    await serve(host)
    print("ready", flush=True)
    await asyncio.Event().wait()


ECHO_CLIENT = """
import socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((host, port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
message, n = b"x" * 64, 0
end = time.perf_counter() + seconds
start = time.perf_counter()
while time.perf_counter() < end:
    s.sendall(message)
    got = 0
    while got < 64:
        got += len(s.recv(64 - got))
    n += 1
print(n / (time.perf_counter() - start))
"""


def missing() -> str | None:
    """Why this benchmark cannot run here, or ``None``."""
    return tap_missing("wrk")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=60)


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU seconds of this process (``None``) or of ``pid``."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def in_ns(ns: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{args[0]} failed: {out.decode()} {err.decode()}")
    return out.decode()


async def wrk(ns: str, host: str, seconds: int, conns: int, pid: int | None) -> tuple[float, float]:
    """Requests/s of ``wrk -t1 -c<conns>`` and the server's CPU µs per request."""
    before = cpu_seconds(pid)
    out = await in_ns(ns, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", f"http://{host}:{HTTP_PORT}/")
    cpu = cpu_seconds(pid) - before
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not rps or not count or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk: {out}")
    return float(rps.group(1)), cpu / int(count.group(1)) * 1e6


async def echo_rate(ns: str, host: str, seconds: int, pid: int | None) -> tuple[float, float]:
    """Round trips/s of the echo client and the server's CPU µs per round trip."""
    before = cpu_seconds(pid)
    rate = float(await in_ns(ns, sys.executable, "-c", ECHO_CLIENT, host, str(ECHO_PORT), str(seconds)))
    return rate, (cpu_seconds(pid) - before) / (rate * seconds) * 1e6


async def figures(quick: bool, rounds: int) -> dict[str, Any]:
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork
    from unik_tcpip.aio import UnikEventLoop
    from unik_tcpip.stack import TcpipStack

    tag = secrets.token_hex(3)
    client_ns, server_ns = f"unik-aiob-c-{tag}", f"unik-aiob-s-{tag}"
    tap, veth = f"uka{tag}", f"ukv{tag}"
    unik_host, kernel_host = f"{CLIENT_NET}.2", f"{SERVER_NET}.2"
    sh("ip", "netns", "add", client_ns)
    sh("ip", "netns", "add", server_ns)
    network = None
    kernel: asyncio.subprocess.Process | None = None
    try:
        veth_between(client_ns, server_ns, veth, f"{SERVER_NET}.1/24", f"{kernel_host}/24")
        network = await TapNetwork.connect("service", tap, offload=True, create=True)
        sh("ip", "link", "set", tap, "netns", client_ns)
        sh("ip", "-n", client_ns, "addr", "add", f"{CLIENT_NET}.1/24", "dev", tap)
        sh("ip", "-n", client_ns, "link", "set", tap, "up")
        stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                         ipv4=f"{unik_host}/24")
        UnikEventLoop.attach_running(stack)
        servers = await serve(None)
        kernel = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", server_ns, sys.executable, __file__, "--serve", kernel_host,
            stdout=asyncio.subprocess.PIPE)
        assert kernel.stdout is not None
        if await asyncio.wait_for(kernel.stdout.readline(), 30) != b"ready\n":
            raise RuntimeError("the kernel-side server did not start")
        server_pid = int((await in_ns(server_ns, "sh", "-c", f"pgrep -f 'aio.py --serve {kernel_host}'"))
                         .split()[0])
        seconds = 2 if quick else 3
        runs: dict[str, dict[str, list[tuple[float, float]]]] = {
            side: {"c10": [], "c100": [], "echo": []} for side in ("unik", "kernel")}
        try:
            for i in range(rounds):
                for side in ("unik", "kernel") if i % 2 == 0 else ("kernel", "unik"):
                    host, pid = (unik_host, None) if side == "unik" else (kernel_host, server_pid)
                    runs[side]["c10"].append(await wrk(client_ns, host, seconds, 10, pid))
                    runs[side]["c100"].append(await wrk(client_ns, host, seconds, 100, pid))
                    runs[side]["echo"].append(await echo_rate(client_ns, host, seconds, pid))
        finally:
            for server in servers:
                server.close()
            await stack.disconnect()
        out: dict[str, Any] = {}
        for side in ("unik", "kernel"):
            for what, unit, cpu in (("c10", "http_rps", "http_cpu_us_per_request"),
                                    ("c100", "http_c100_rps", "http_c100_cpu_us_per_request"),
                                    ("echo", "echo_round_trips_per_s", "echo_cpu_us_per_round_trip")):
                values = runs[side][what]
                out[f"{side}.{unit}"] = round(statistics.median(v for v, _ in values), 1)
                out[f"{side}.{cpu}"] = round(statistics.median(c for _, c in values), 1)
        for what, unit in (("c10", "http"), ("c100", "http_c100"), ("echo", "echo")):
            ratios = [u[0] / k[0] for u, k in zip(runs["unik"][what], runs["kernel"][what], strict=True)]
            out[f"ratio.{unit}"] = round(statistics.median(ratios), 3)
            out[f"ratio.{unit}_rounds"] = [round(r, 3) for r in ratios]
        return out
    finally:
        if kernel is not None and kernel.returncode is None:
            subprocess.run(["sh", "-c", f"ip netns pids {server_ns} | xargs -r kill"], capture_output=True)
            await kernel.wait()
        if network is not None:
            await network.disconnect()
        for ns in (client_ns, server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--rounds", type=int, default=0, help="A/B rounds (default 5, 3 with --quick)")
    parser.add_argument("--serve", metavar="HOST", help=argparse.SUPPRESS)  # the kernel side's subprocess
    args = parser.parse_args()
    if args.serve:
        asyncio.run(kernel_main(args.serve))
        return 0
    problem = missing()
    if problem:
        print(f"bench/aio.py: skipped: {problem}")
        return 0
    from unik_tcpip.aio import run

    rounds = args.rounds or (3 if args.quick else 5)
    started = time.perf_counter()
    out = run(figures(args.quick, rounds))
    unik = {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith("unik.")}
    kernel = {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith("kernel.")}
    ratios = {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith("ratio.") and not k.endswith("_rounds")}
    path = write("aio", unik, {"kernel_asyncio": kernel}, ratios)
    data = path.read_text()
    rounds_note = {k.split(".", 1)[1]: v for k, v in out.items() if k.endswith("_rounds")}
    import json

    full = json.loads(data)
    cpu = {what: round(unik[key] / kernel[key], 2) for what, key in (
        ("http", "http_cpu_us_per_request"), ("http_c100", "http_c100_cpu_us_per_request"),
        ("echo", "echo_cpu_us_per_round_trip"))}
    full["notes"] = {"rounds": rounds, "round_ratios": rounds_note, "load_average": os.getloadavg(),
                     "cpu_per_request_unik_over_kernel": cpu,
                     "how": "unik: UnikEventLoop + unik's stack on a TAP (offloads on); kernel: asyncio.run on the "
                            "kernel's sockets behind a veth pair; clients in the namespace between them"}
    path.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    unik_kernel_table(unik, kernel, ratios, ("CPU per request unik/kernel", cpu))
    print(f"  ({time.perf_counter() - started:.0f} s; {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
