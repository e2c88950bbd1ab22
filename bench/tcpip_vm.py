"""unik's TCP/IP stack inside a virtio VM, against the guest kernel's sockets in the same kind of VM.

Two guests boot side by side under QEMU TCG, each on its own TAP in a network
namespace this script creates, from images built with the same kernel, CPython and
application code:

* ``unik``: ``examples/http`` as it is, on unik's stack over the guest's virtio-net
  NIC (the AF_PACKET ring, header prediction and all);
* ``kernel``: the same ``http_app`` package with a bench-only entry module added to
  the copy (:data:`KERNEL_ENTRY`): it lifts the artifact's refusal of host sockets
  (:mod:`unik.hostsockets`), closes the ring of its ``network`` device, gives the guest
  kernel's interface the address, and serves ``http_app``'s handler with
  ``asyncio.start_server`` on the guest kernel's sockets.

wrk (``-t1``, ``-c10`` and ``-c100``) and a bulk download (curl fetching an 8 MiB file of
``htdocs`` several times: the guest sends) alternate between the two guests, so a busy
neighbour slows both alike; each figure is the median of the rounds, each ratio the
median of the rounds' ratios.  The host CPU time of each QEMU process per request (the
whole guest, emulated) is reported beside it.

Needs root, /dev/net/tun, QEMU, wrk and curl; without them it says what is missing.

    python bench/tcpip_vm.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suites' served_support

from benchlib import RESULTS, machine, table, tap_missing
from served_support import stop

REPO = Path(__file__).resolve().parent.parent
UNIK = str(Path(sys.executable).with_name("unik"))
PREFIX = "10.213.9"
HOST = f"{PREFIX}.1"
GUESTS = {"unik": f"{PREFIX}.2", "kernel": f"{PREFIX}.3"}
BULK_BYTES = 8 << 20

#: The kernel-sockets entry, added to a copy of examples/http as ``http_app/kernel.py``.
KERNEL_ENTRY = '''\
"""examples/http on the guest kernel's sockets: bench/tcpip_vm.py's comparison (bench-only)."""

import asyncio
import fcntl
import socket
import struct

from unik import hostsockets
from unik.devices import KVRO, Console, Network
from unik_fdio.packet import find_interface

from . import start as http_start


def _allow(event, args):
    return None


# The guest kernel's sockets are what this comparison measures; a VM artifact refuses them
# (unik.hostsockets, an audit hook that cannot be removed), so this bench-only entry lifts it.
hostsockets._hook.__code__ = _allow.__code__

SIOCSIFADDR, SIOCSIFNETMASK = 0x8916, 0x891C


class _Tcp:
    async def start_server(self, handler, port):
        return await asyncio.start_server(handler, "0.0.0.0", port)


class _Ipv4:
    def __init__(self, address):
        self.address = address


class KernelStack:
    """What http_app.start uses of a Stack, on the kernel's sockets."""

    def __init__(self, address):
        self.tcp, self.ipv4 = _Tcp(), _Ipv4(address)


def _set(sock, request, ifname, address):
    fcntl.ioctl(sock, request, struct.pack("16sH2s4s8s", ifname.encode(), socket.AF_INET, bytes(2),
                                           socket.inet_aton(address), bytes(8)))


async def start(net: Network, htdocs: KVRO, console: Console, *, port: int = 8080,
                address: str = "10.0.0.2/24") -> None:
    ifname, _hw, _mtu = find_interface(net.name, net.mac.hex(":"))
    await net.disconnect()  # the ring: the guest kernel's own stack serves this run
    ip, _, prefix = address.partition("/")
    mask = (0xFFFFFFFF << (32 - int(prefix))) & 0xFFFFFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        _set(sock, SIOCSIFADDR, ifname, ip)
        _set(sock, SIOCSIFNETMASK, ifname, socket.inet_ntoa(mask.to_bytes(4, "big")))
    await http_start(KernelStack(ip), htdocs, console, port=port)
'''


def missing() -> str | None:
    """Why this benchmark cannot run here, or ``None``."""
    return tap_missing("wrk", "curl", "qemu-system-x86_64")


def sh(*args: str, cwd: Path | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return proc.stdout


def prepare(work: Path) -> dict[str, Path]:
    """The two applications, configured and built for virtio (each on its TAP in the namespace)."""
    apps = {}
    for side in GUESTS:
        root = work / side
        shutil.copytree(REPO / "examples" / "http", root,
                        ignore=shutil.ignore_patterns("_build", "dist", "build", "*.egg-info", "__pycache__"))
        (root / "htdocs" / "bulk.bin").write_bytes(bytes(range(256)) * (BULK_BYTES // 256))
        device = "service"
        if side == "kernel":
            (root / "src" / "http_app" / "kernel.py").write_text(KERNEL_ENTRY)
            pyproject = root / "pyproject.toml"
            pyproject.write_text(pyproject.read_text().replace('main = "http_app:start"',
                                                                'main = "http_app.kernel:start"'))
            device = "net"
        sh(UNIK, "configure", "-t", "virtio", "--net", f"{device}=ukv{side[0]}{os.getpid() % 10000}", cwd=root)
        sh(UNIK, "build", cwd=root)
        apps[side] = root
    return apps


@contextmanager
def namespace() -> Iterator[str]:
    """A namespace holding both guests' TAPs, bridged, with the host side at ``HOST``."""
    ns = f"unik-vmb-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", ns, "addr", "add", f"{HOST}/24", "dev", "br0")
        sh("ip", "-n", ns, "link", "set", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        for side in GUESTS:
            tap = f"ukv{side[0]}{os.getpid() % 10000}"
            sh("ip", "-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
            sh("ip", "-n", ns, "link", "set", tap, "master", "br0")
            sh("ip", "-n", ns, "link", "set", tap, "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Guest:
    """One booted guest: its ``unik run`` process and its QEMU's pid."""

    def __init__(self, side: str, root: Path, ns: str) -> None:
        self.side, self.address = side, GUESTS[side]
        arg = "--ipv4" if side == "unik" else "--address"
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, UNIK, "run", "--accel", "tcg", "--", arg,
                                      f"{self.address}/24"], cwd=root, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        console: list[str] = []
        deadline = time.monotonic() + 300
        while not (console and console[-1].startswith("serving on ")):
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {side} guest never served:\n" + "".join(console[-30:]))
            console.append(line)
        qemu = [p for p in _descendants(self.proc.pid) if Path(f"/proc/{p}/comm").read_text().startswith("qemu")]
        if not qemu:
            self.stop()
            raise RuntimeError(f"no QEMU process under the {side} guest's unik run")
        self.qemu = qemu[0]

    def cpu(self) -> float:
        return _cpu_seconds(self.qemu)

    def stop(self) -> None:
        stop(self.proc, timeout=60)


def wrk(ns: str, guest: Guest, conns: int, seconds: int) -> tuple[float, float]:
    """wrk's requests/s against ``guest``, and the guest's QEMU CPU ms per 1,000 requests."""
    before = guest.cpu()
    out = sh("ip", "netns", "exec", ns, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
             f"http://{guest.address}:8080/", timeout=seconds + 60)
    cpu = guest.cpu() - before
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not rps or not count or not int(count.group(1)):
        raise RuntimeError(f"wrk failed against the {guest.side} guest: {out}")
    if re.search(r"Non-2xx|Socket errors", out):
        print(f"  wrk against the {guest.side} guest: {re.findall(r'Non-2xx.*|Socket errors.*', out)}")
    return float(rps.group(1)), cpu / int(count.group(1)) * 1e6


def bulk(ns: str, guest: Guest, times: int) -> float:
    """Mbit/s of ``times`` downloads of the 8 MiB file from ``guest`` (one connection each)."""
    url = f"http://{guest.address}:8080/bulk.bin"
    start = time.perf_counter()
    out = sh("ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "300", "-w", "%{size_download}\\n",
             *[arg for _ in range(times) for arg in (url, "-o", "/dev/null")], timeout=600)
    elapsed = time.perf_counter() - start
    sizes = [int(x) for x in out.split()]
    if sizes != [BULK_BYTES] * times:
        raise RuntimeError(f"curl got {sizes} bytes from the {guest.side} guest, not {BULK_BYTES} each")
    return BULK_BYTES * times * 8 / elapsed / 1e6


def figures(quick: bool, rounds: int) -> dict[str, Any]:
    """Boot both guests, measure them alternately, return the figures."""
    import tempfile

    seconds = 3 if quick else 5
    with tempfile.TemporaryDirectory(prefix="unik-vmbench-") as tmp:
        apps = prepare(Path(tmp))
        with namespace() as ns:
            guests: dict[str, Guest] = {}
            try:
                for side, root in apps.items():
                    guests[side] = Guest(side, root, ns)
                runs: dict[str, dict[str, list[tuple[float, float]]]] = {
                    side: {"c10": [], "c100": [], "bulk": []} for side in GUESTS}
                for guest in guests.values():  # warm up: CPython's first requests, ARP
                    wrk(ns, guest, 10, 1)
                for i in range(rounds):
                    order = list(GUESTS) if i % 2 == 0 else list(reversed(GUESTS))
                    for side in order:
                        guest = guests[side]
                        runs[side]["c10"].append(wrk(ns, guest, 10, seconds))
                        runs[side]["c100"].append(wrk(ns, guest, 100, seconds))
                        runs[side]["bulk"].append((bulk(ns, guest, 2 if quick else 4), 0.0))
                        latest = ", ".join(f"{k} {v[-1][0]:.1f}" for k, v in runs[side].items())
                        print(f"  round {i + 1} {side}: {latest}", flush=True)
            finally:
                for guest in guests.values():
                    guest.stop()
    out: dict[str, Any] = {}
    for side in GUESTS:
        r = runs[side]
        out[side] = {
            "http_c10_rps": round(statistics.median(x for x, _ in r["c10"]), 1),
            "http_c100_rps": round(statistics.median(x for x, _ in r["c100"]), 1),
            "http_c10_qemu_cpu_us_per_request": round(statistics.median(c for _, c in r["c10"]), 1),
            "bulk_send_mbps": round(statistics.median(x for x, _ in r["bulk"]), 2),
        }
    ratio = {
        key: round(statistics.median(u[0] / k[0] for u, k in zip(runs["unik"][key], runs["kernel"][key],
                                                                   strict=True)), 3)
        for key in ("c10", "c100", "bulk")
    }
    out["ratios"] = {"http_c10_vs_kernel": ratio["c10"], "http_c100_vs_kernel": ratio["c100"],
                     "bulk_send_vs_kernel": ratio["bulk"]}
    out["rounds"] = {side: runs[side] for side in GUESTS}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter wrk runs, fewer downloads")
    parser.add_argument("--rounds", type=int, default=0, help="A/B rounds (default 3, 1 with --quick)")
    args = parser.parse_args()
    why = missing()
    if why:
        print(f"bench/tcpip_vm.py: skipped: {why}")
        return 0
    rounds = args.rounds or (1 if args.quick else 3)
    result = figures(args.quick, rounds)
    data = {"vm": result, "accelerator": "tcg", "machine": machine(),
            "notes": {"rounds": rounds, "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                      "target": "unik >= 80 % of the guest kernel's req/s (issue 17)"}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tcpip_vm.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print_table(result, rounds)
    return 0


def print_table(result: dict[str, Any], rounds: int) -> None:
    """The figures, one line each."""
    u, k, r = result["unik"], result["kernel"], result["ratios"]
    print(f"examples/http in a virtio guest under QEMU TCG: unik's stack vs the guest kernel's ({rounds} A/B rounds)")
    table([
        ("HTTP wrk -c10", f"unik {u['http_c10_rps']:.0f} req/s, kernel {k['http_c10_rps']:.0f} req/s  "
                          f"({r['http_c10_vs_kernel']:.1%})"),
        ("HTTP wrk -c100", f"unik {u['http_c100_rps']:.0f} req/s, kernel {k['http_c100_rps']:.0f} req/s  "
                           f"({r['http_c100_vs_kernel']:.1%})"),
        ("QEMU CPU per request", f"unik {u['http_c10_qemu_cpu_us_per_request']:.0f} µs, "
                                 f"kernel {k['http_c10_qemu_cpu_us_per_request']:.0f} µs"),
        ("bulk download (guest sends)", f"unik {u['bulk_send_mbps']:.1f} Mbit/s, kernel {k['bulk_send_mbps']:.1f} "
                                        f"Mbit/s  ({r['bulk_send_vs_kernel']:.1%})"),
    ])


if __name__ == "__main__":
    sys.exit(main())
