"""uvicorn + Starlette on unik's stack over a TAP against the same application on the kernel's sockets.

One Starlette application (``/``: a short text, ``/json``: a small JSON document) served by
uvicorn (httptools), built by unik for the unix target twice:

* ``unik``: ``--net tap``: uvicorn on unik's event loop, unik's TCP/IP stack on a TAP (offloads
  on) whose kernel side is in the client namespace;
* ``kernel``: ``--net socket``: the same artifact's code on asyncio's own loop and the kernel's
  sockets, in a second namespace joined to the client namespace by a veth pair, so that
  both paths cross one virtual link.

``wrk -t1 -c10`` and ``-c100`` (``--latency``: p99 reported, and the requests wrk gave up on after
2 s) run in the client namespace
against each endpoint; the sides alternate for several rounds and each figure is the
median, each ratio (unik/kernel req/s; the target is >= 0.70) the median of the rounds'.
Access logs are off on both sides.

Then the image (``--image``, on by default): examples/fastapi and examples/http built for
virtio; the initramfs sizes, and the time from `unik run` to the first HTTP response
(QEMU's user network, the same accelerator for both: KVM when it boots guests here, else
TCG), the median of a few boots.

Needs root, /dev/net/tun, iproute2, wrk and curl (and QEMU for the image part); without
them it says what is missing and exits 0 without touching the results file.

    python bench/asgi.py [--quick] [--rounds N] [--no-image]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suites' served_support

from benchlib import tap_missing, unik_kernel_table, veth_between, write
from served_support import stop

REPO = Path(__file__).resolve().parents[1]
UNIK = str(Path(sys.executable).with_name("unik"))
CLIENT_NET, SERVER_NET = "10.213.31", "10.213.32"
PORT = 8000
ENDPOINTS = ("/", "/json")

APP = '''\
"""The benchmark's application: a short text and a small JSON document."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hello, world\\n")


async def document(request):
    return JSONResponse({"id": 42, "name": "unik", "tags": ["asgi", "uvicorn", "starlette"], "ok": True})


app = Starlette(routes=[Route("/", hello), Route("/json", document)])
'''
PYPROJECT = '''\
[project]
name = "benchapp"
version = "0.1.0"
dependencies = ["starlette", "uvicorn", "httptools"]

[tool.unik]
asgi = "bench_app.app:app"
'''


def missing(image: bool) -> str | None:
    """Why this benchmark cannot run here, or ``None``."""
    return tap_missing("wrk", "curl", *(["qemu-system-x86_64"] if image else []))


def sh(*args: str, cwd: Path | None = None, timeout: float = 900) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def build(root: Path, *keys: str) -> Path:
    """Configure and build the unix artifact of ``root`` with ``keys``; the .pyz."""
    sh(UNIK, "configure", "-t", "unix", *keys, cwd=root)
    sh(UNIK, "build", cwd=root)
    return next((root / "dist").glob("*-unix/*.pyz"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(ns: str, url: str, seconds: int, conns: int) -> tuple[float, float, int]:
    """``wrk -t1 -c<conns> --latency``: requests/s, the p99 latency in ms, and requests that timed out (2 s)."""
    out = sh("ip", "netns", "exec", ns, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", url,
             timeout=seconds + 60)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if not rps or not p99 or "Non-2xx" in out or (errors and any(int(n) for n in errors.groups()[:3])):
        raise RuntimeError(f"wrk: {out}")
    return float(rps.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], int(errors.group(4)) if errors else 0


def wait_http(ns: str | None, url: str, deadline_s: float, proc: subprocess.Popen[bytes]) -> None:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}) before {url} answered")
        if subprocess.run([*prefix, "curl", "-sf", "-o", "/dev/null", "-m", "2", url]).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {deadline_s:.0f} s")


def throughput(work: Path, quick: bool, rounds: int) -> dict[str, Any]:
    """The A/B rounds of wrk against both sides; figures by side, endpoint and concurrency."""
    app = work / "benchapp"
    (app / "src" / "bench_app").mkdir(parents=True)
    (app / "src" / "bench_app" / "__init__.py").write_text("")
    (app / "src" / "bench_app" / "app.py").write_text(APP)
    (app / "pyproject.toml").write_text(PYPROJECT)
    tag = secrets.token_hex(3)
    client_ns, server_ns = f"unik-asgib-c-{tag}", f"unik-asgib-s-{tag}"
    tap, veth = f"uas{tag}", f"uav{tag}"
    unik_host, kernel_host = f"{CLIENT_NET}.2", f"{SERVER_NET}.2"
    # unik's side: unik's stack on a TAP; the kernel's side: the same code on the host's sockets
    unik_pyz = build(app, "--net", "tap", f"--ipv4={unik_host}/24", "--access-log", "false")
    (work / "unik.pyz").write_bytes(unik_pyz.read_bytes())
    kernel_pyz = build(app, "--net", "socket", f"--ipv4={kernel_host}/24", "--access-log", "false")
    (work / "kernel.pyz").write_bytes(kernel_pyz.read_bytes())
    servers: list[subprocess.Popen[bytes]] = []
    sh("ip", "netns", "add", client_ns)
    sh("ip", "netns", "add", server_ns)
    try:
        veth_between(client_ns, server_ns, veth, f"{SERVER_NET}.1/24", f"{kernel_host}/24")
        sh("ip", "-n", client_ns, "tuntap", "add", tap, "mode", "tap")
        sh("ip", "-n", client_ns, "addr", "add", f"{CLIENT_NET}.1/24", "dev", tap)
        sh("ip", "-n", client_ns, "link", "set", tap, "up")
        unik = subprocess.Popen(["ip", "netns", "exec", client_ns, sys.executable, str(work / "unik.pyz"),
                                 "--net", f"service={tap}", "--port", str(PORT)], stdout=subprocess.DEVNULL)
        servers.append(unik)
        kernel = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, str(work / "kernel.pyz"),
                                   "--port", str(PORT)], stdout=subprocess.DEVNULL)
        servers.append(kernel)
        hosts = {"unik": (unik_host, unik), "kernel": (kernel_host, kernel)}
        for host, proc in hosts.values():
            wait_http(client_ns, f"http://{host}:{PORT}/", 120, proc)
            wrk(client_ns, f"http://{host}:{PORT}/", 2, 100)  # warm-up: ARP, code paths, allocator
        seconds = 3 if quick else 5
        cases = [(path, conns) for path in ENDPOINTS for conns in (10, 100)]
        runs: dict[tuple[str, str, int], list[tuple[float, float, float, int]]] = {}
        for i in range(rounds):
            for side in ("unik", "kernel") if i % 2 == 0 else ("kernel", "unik"):
                host, proc = hosts[side]
                for path, conns in cases:
                    before = cpu_seconds(proc.pid)
                    rps, p99, timeouts = wrk(client_ns, f"http://{host}:{PORT}{path}", seconds, conns)
                    cpu_us = (cpu_seconds(proc.pid) - before) / (rps * seconds) * 1e6
                    runs.setdefault((side, path, conns), []).append((rps, p99, cpu_us, timeouts))
        out: dict[str, Any] = {}
        for (side, path, conns), values in sorted(runs.items()):
            name = f"{'hello' if path == '/' else 'json'}_c{conns}"
            out[f"{side}.{name}_rps"] = round(statistics.median(v[0] for v in values), 1)
            out[f"{side}.{name}_p99_ms"] = round(statistics.median(v[1] for v in values), 2)
            out[f"{side}.{name}_cpu_us_per_request"] = round(statistics.median(v[2] for v in values), 1)
            out[f"{side}.{name}_timeouts"] = sum(int(v[3]) for v in values)  # wrk's, over every round
        for path, conns in cases:
            name = f"{'hello' if path == '/' else 'json'}_c{conns}"
            ratios = [u[0] / k[0] for u, k in zip(runs["unik", path, conns], runs["kernel", path, conns], strict=True)]
            out[f"ratio.{name}"] = round(statistics.median(ratios), 3)
            out[f"rounds.{name}"] = [round(r, 3) for r in ratios]
        return out
    finally:
        for proc in servers:
            stop(proc)
        for ns in (client_ns, server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def first_response(root: Path, runs: int) -> tuple[float, str]:
    """Median seconds from `unik run` to the first HTTP response of the VM, and the accelerator used."""
    guest_port = 8000 if (root / "src" / "fastapi_example").is_dir() else 8080
    times = []
    accel = ""
    for _ in range(runs):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = root / "boot.log"
        start = time.monotonic()
        with log.open("w") as out:
            vm = subprocess.Popen([UNIK, "run", "--publish", f"127.0.0.1:{port}:{guest_port}"], cwd=root,
                                  stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(None, f"http://127.0.0.1:{port}/", 300, vm)
            times.append(time.monotonic() - start)
        except RuntimeError as exc:
            raise RuntimeError(f"{root.name}: {exc}:\n{log.read_text()}") from None
        finally:
            stop(vm)
        accel = "tcg" if "TCG" in log.read_text() else "kvm"
    return statistics.median(times), accel


def image(work: Path, quick: bool) -> dict[str, Any]:
    """examples/fastapi against examples/http in virtio: initramfs size, boot to first response."""
    out: dict[str, Any] = {}
    runs = 1 if quick else 3
    for name in ("fastapi", "http"):
        root = work / name
        shutil.copytree(REPO / "examples" / name, root,
                        ignore=shutil.ignore_patterns("_build", "dist", "__pycache__", "*.egg-info"))
        keys = [] if name == "fastapi" else ["--net", "service=user"]  # fastapi's table says it
        sh(UNIK, "configure", "-t", "virtio", *keys, cwd=root)
        sh(UNIK, "build", cwd=root)
        initramfs = next((root / "dist").glob("*-virtio/initramfs.cpio*"))
        seconds, accel = first_response(root, runs)
        out[f"{name}.initramfs_bytes"] = initramfs.stat().st_size
        out[f"{name}.first_response_s"] = round(seconds, 2)
        out["accelerator"] = accel
    out["ratio.initramfs"] = round(out["fastapi.initramfs_bytes"] / out["http.initramfs_bytes"], 2)
    out["ratio.first_response"] = round(out["fastapi.first_response_s"] / out["http.first_response_s"], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--rounds", type=int, default=0, help="A/B rounds (default 5, 3 with --quick)")
    parser.add_argument("--no-image", dest="image", action="store_false", help="skip the VM image part")
    parser.add_argument("--no-throughput", dest="throughput", action="store_false", help="only the VM image part")
    args = parser.parse_args()
    problem = missing(args.image)
    if problem:
        print(f"bench/asgi.py: skipped: {problem}")
        return 0
    rounds = args.rounds or (3 if args.quick else 5)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="unik-bench-asgi-") as tmp:
        out = throughput(Path(tmp), args.quick, rounds) if args.throughput else {}
        vm = image(Path(tmp), args.quick) if args.image else {}
    unik = {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith("unik.")}
    kernel = {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith("kernel.")}
    ratios = {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith("ratio.")}
    unik.update({f"image_{k.replace('.', '_')}": v for k, v in vm.items()
                 if k.startswith("fastapi.")})
    peers = {"kernel_uvicorn": kernel}
    if vm:
        peers["examples_http_vm"] = {k.split(".", 1)[1]: v for k, v in vm.items() if k.startswith("http.")}
        ratios.update({f"image_{k.split('.', 1)[1]}": v for k, v in vm.items() if k.startswith("ratio.")})
    path = write("asgi", unik, peers, ratios, accelerator=vm.get("accelerator"))
    full = json.loads(path.read_text())
    full["notes"] = {"rounds": rounds, "round_ratios": {k.split(".", 1)[1]: v for k, v in out.items()
                                                        if k.startswith("rounds.")},
                     "load_average": os.getloadavg(), "target": "unik/kernel req/s >= 0.70",
                     "cpu_per_request_unik_over_kernel": {
                         k[: -len("_cpu_us_per_request")]: round(v / kernel[k], 2) for k, v in unik.items()
                         if k.endswith("_cpu_us_per_request") and kernel.get(k)},
                     "how": "uvicorn (httptools) + Starlette built by unik for unix: --net tap (unik's loop and "
                            "stack on a TAP, offloads on) vs --net socket (asyncio's loop on the kernel's "
                            "sockets behind a veth pair); wrk -t1 in the namespace between them"}
    path.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    unik_kernel_table(unik, kernel, ratios)
    print(f"  ({time.perf_counter() - started:.0f} s; {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
