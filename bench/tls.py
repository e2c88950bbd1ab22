"""How fast is unik's TLS layering? Handshakes and bulk transfer against the same OpenSSL on kernel sockets.

In one run, interleaved round by round (A, B, A, B...), each server in its own process
and a client process (blocking ``ssl`` sockets, identical for every server) in another:

* ``unik.*``: unik-lib-tls (``OpenSSLTLS.start_server``) on unik's socket stack, i.e. TLS
  layered over a unik flow through ``ssl.MemoryBIO``/``SSLObject``.
* ``peers.kernel_asyncio.*``: the same handler, the same ``ssl.SSLContext`` (built by
  ``unik_tls.config.server_context``), served by plain ``asyncio.start_server(ssl=...)``.
* ``unik.tap_*``: unik-lib-tls over unik's own TCP/IP stack on a TAP, the client in a
  network namespace holding the TAP's kernel side (root only; ``null`` otherwise).

Figures: ``handshakes_per_s`` (full TLS 1.3 handshakes, ECDSA P-256 certificate, a new
TCP connection each, one client process), ``bulk_mbps`` (server to client, 10^6 bytes/s,
256 KiB writes), ``upload_mbps`` (client to server), and ``*_per_cpu_s`` (the same per
second of the server process's CPU time, which a busy shared machine disturbs less).
The ratios are unik / kernel_asyncio.

    python bench/tls.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import RESULTS, machine, table

CHUNK = 256 * 1024
TAP_PREFIX = "10.213.9"


# --- the server (a separate process: `bench/tls.py --serve MODE ...`) ---------------------------


async def handle(reader: Any, writer: Any) -> None:
    """``H``: answer ``ok``; ``D n``: send n bytes; ``U n``: read n bytes, answer ``done``."""
    try:
        line = await reader.readline()
        cmd, _, arg = line.strip().partition(b" ")
        if cmd == b"H":
            writer.write(b"ok\n")
        elif cmd == b"D":
            left = int(arg)
            block = bytes(CHUNK)
            while left > 0:
                n = min(CHUNK, left)
                writer.write(block if n == CHUNK else block[:n])
                await writer.drain()
                left -= n
        elif cmd == b"U":
            left = int(arg)
            while left > 0:
                data = await reader.read(CHUNK)
                if not data:
                    break
                left -= len(data)
            writer.write(b"done\n")
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(mode: str, port: int, cert: str, key: str, tap: str | None) -> None:
    from unik_tls.config import CertPair, TLSConfig, server_context
    from unik_tls.device import OpenSSLTLS

    pair = CertPair.from_files(cert, key)
    if mode == "kernel_asyncio":
        ctx = server_context(TLSConfig(pairs=[pair]))
        kernel_server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx, backlog=512)
        print("ready", flush=True)
        await kernel_server.serve_forever()
        return
    if tap is None:
        from unik_unix.socket_stack import SocketStack

        stack: Any = await SocketStack.connect("127.0.0.1/8")
    else:
        from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
        from unik_fdio.tap import TapNetwork
        from unik_tcpip.stack import TcpipStack

        network = await TapNetwork.connect("service", tap, offload=True, create=True)
        print("tap", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the TAP is in place
        stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                         ipv4=f"{TAP_PREFIX}.2/24")
    tls = OpenSSLTLS.create(stack, pairs=[pair])
    server = await tls.start_server(handle, port)
    print("ready", flush=True)
    await server.serve_forever()


# --- the client (a separate process: `bench/tls.py --client ...`) -------------------------------


def client(host: str, port: int, what: str, amount: float) -> dict[str, float]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server's CertificateVerify signature is still checked

    def connect() -> ssl.SSLSocket:
        sock = socket.create_connection((host, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ctx.wrap_socket(sock, server_hostname="localhost")

    def recv_line(s: ssl.SSLSocket) -> bytes:
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(64)
            if not chunk:
                raise ConnectionError(f"closed early: {data!r}")
            data += chunk
        return data

    if what == "h":
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < amount:
            with connect() as s:
                s.sendall(b"H\n")
                assert recv_line(s) == b"ok\n"
            count += 1
        return {"handshakes_per_s": count / (time.perf_counter() - start), "count": count}
    size = int(amount)
    with connect() as s:
        start = time.perf_counter()
        if what == "d":
            s.sendall(b"D %d\n" % size)
            buf = bytearray(1 << 20)
            got = 0
            while got < size:
                n = s.recv_into(buf)
                if not n:
                    raise ConnectionError(f"download ended after {got} bytes")
                got += n
        else:
            s.sendall(b"U %d\n" % size)
            block = bytes(1 << 20)
            left = size
            while left > 0:
                n = min(len(block), left)
                s.sendall(block[:n] if n < len(block) else block)
                left -= n
            assert recv_line(s) == b"done\n"
        elapsed = time.perf_counter() - start
    return {"mbps": size / elapsed / 1e6, "seconds": elapsed}


# --- the driver -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, mode: str, port: int, cert: str, key: str, tap: str | None = None) -> None:
        args = [sys.executable, __file__, "--serve", mode, str(port), cert, key]
        if tap:
            args += ["--tap", tap]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = port

    def wait_for(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != word:
            raise RuntimeError(f"server said {line!r} (exit {self.proc.poll()})")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_client(host: str, port: int, what: str, amount: float, netns: str | None = None) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--client", host, str(port), what, str(amount)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise RuntimeError(f"client {what} failed: {out.stderr}")
    return dict(json.loads(out.stdout))


def measure(server: Server, host: str, seconds: float, size: int, netns: str | None = None) -> dict[str, float]:
    pid = server.proc.pid
    out: dict[str, float] = {}
    cpu = cpu_seconds(pid)
    h = run_client(host, server.port, "h", seconds, netns)
    used = cpu_seconds(pid) - cpu
    out["handshakes_per_s"] = h["handshakes_per_s"]
    out["handshakes_per_cpu_s"] = h["count"] / used if used else 0.0
    for what, name in (("d", "bulk"), ("u", "upload")):
        cpu = cpu_seconds(pid)
        r = run_client(host, server.port, what, size, netns)
        used = cpu_seconds(pid) - cpu
        out[f"{name}_mbps"] = r["mbps"]
        out[f"{name}_mb_per_cpu_s"] = size / 1e6 / used if used else 0.0
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(s[k] for s in samples), 1) for k in samples[0]}


def tap_figures(cert: str, key: str, seconds: float, size: int, rounds: int) -> dict[str, float] | str:
    """The unik server on unik's TCP/IP stack over a TAP; the client in a namespace."""
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or shutil.which("ip") is None:
        return "needs root, /dev/net/tun and iproute2"
    ns, ifname = f"unik-tlsb-{secrets.token_hex(3)}", f"ukb{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = Server("unik", 8443, cert, key, tap=ifname)
    try:
        server.wait_for("tap")
        for cmd in (["ip", "link", "set", ifname, "netns", ns],
                    ["ip", "-n", ns, "addr", "add", f"{TAP_PREFIX}.1/24", "dev", ifname],
                    ["ip", "-n", ns, "link", "set", ifname, "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]):
            subprocess.run(cmd, check=True)
        server.go()
        server.wait_for("ready")
        return medians([measure(server, f"{TAP_PREFIX}.2", seconds, size, ns) for _ in range(rounds)])
    finally:
        server.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, smaller transfers")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--no-tap", action="store_true", help="skip the TAP figures")
    parser.add_argument("--serve", nargs=4, metavar=("MODE", "PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    parser.add_argument("--tap", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=4, metavar=("HOST", "PORT", "WHAT", "AMOUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        mode, port, cert, key = args.serve
        asyncio.run(serve(mode, int(port), cert, key, args.tap))
        return 0
    if args.client:
        host, port, what, amount = args.client
        print(json.dumps(client(host, int(port), what, float(amount))))
        return 0

    from unik_tls.certs import selfsigned, write_pair

    seconds, size = (1.5, 128 << 20) if args.quick else (3.0, 512 << 20)
    with tempfile.TemporaryDirectory(prefix="unik-tls-bench-") as tmp:
        cert, key = str(Path(tmp) / "cert.pem"), str(Path(tmp) / "key.pem")
        write_pair(*selfsigned(["localhost", "127.0.0.1", f"{TAP_PREFIX}.2"]), Path(cert), Path(key))
        servers = {mode: Server(mode, free_port(), cert, key) for mode in ("unik", "kernel_asyncio")}
        try:
            for server in servers.values():
                server.wait_for("ready")
            samples: dict[str, list[dict[str, float]]] = {mode: [] for mode in servers}
            for _ in range(args.rounds):
                for mode, server in servers.items():  # A/B interleaved, round by round
                    samples[mode].append(measure(server, "127.0.0.1", seconds, size))
        finally:
            for server in servers.values():
                server.stop()
        tap = None if args.no_tap else tap_figures(cert, key, seconds, size, max(1, args.rounds - 1))

    unik, kernel = medians(samples["unik"]), medians(samples["kernel_asyncio"])
    notes: dict[str, Any] = {
        "setup": "TLS 1.3, ECDSA P-256, X25519; one blocking-ssl client process; servers in their own "
                 "processes; 2 shared cores: compare the ratios, measured A/B interleaved",
        "target": "unik >= 80 % of kernel_asyncio on the socket stack",
    }
    if isinstance(tap, dict):
        unik.update({f"tap_{k}": v for k, v in tap.items()})
    else:
        notes["tap"] = tap or "skipped (--no-tap)"
        unik.update({"tap_handshakes_per_s": None, "tap_bulk_mbps": None})  # type: ignore[dict-item]
    ratios = {f"{k}_vs_kernel_asyncio": round(unik[k] / kernel[k], 4) for k in kernel if kernel[k]}
    if isinstance(tap, dict):  # unik's own TCP over a TAP against the kernel's TCP on loopback
        ratios.update({f"tap_{k}_vs_kernel_asyncio": round(tap[k] / kernel[k], 4) for k in kernel if kernel[k]})
    RESULTS.mkdir(exist_ok=True)
    data = {"unik": unik, "peers": {"kernel_asyncio": kernel}, "ratios": ratios, "machine": machine(),
            "accelerator": None, "notes": notes}
    (RESULTS / "tls.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print("unik-lib-tls on unik's socket stack vs asyncio's ssl on kernel sockets (same OpenSSL context)")
    rows = []
    for k in kernel:
        rows.append((k, f"unik {unik[k]:>9.1f}   kernel_asyncio {kernel[k]:>9.1f}   "
                        f"ratio {ratios.get(k + '_vs_kernel_asyncio', 0):.1%}"))
    if isinstance(tap, dict):
        rows += [(f"tap {k}", f"unik {v:>9.1f}") for k, v in tap.items()]
    table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
