"""Boot benchmark of the hvt target: CPython as a unikernel on unik's own KVM monitor.

* unik: ``examples/hello`` and ``examples/http`` built with ``unik build -t hvt``; the
  ELF's size; ``unik-hvt`` started directly on hello with ``--count 1`` (one line, then
  exit) to its exit; the smallest ``--mem`` (MiB, of a fixed list) it runs in; and
  ``unik run -t hvt --net service=TAP`` of http (on a TAP in a network namespace made
  here and removed after) from the start to the "serving" line and to the first HTTP
  response, seen by a prober that starts a TCP connection every 25 ms.
* hello_profile: where one boot of hello goes, from ``unik-hvt --profile`` (the monitor's
  start-up, the guest's time, the runtime's system calls by name: each is a trap here).
* http_rps: ``wrk -t1 -c10 -d3s`` against examples/http under hvt, and peers.unix_http
  against examples/http on the unix target (unik's stack over the same TAP), alternating
  (:mod:`hvt_http`, whose section http_requests also has the CPU time, exits, turns and
  traps per request, and an idle unikernel's CPU).
* peers.c_hello: a static glibc hello on the same runtime and monitor (the floor for a
  libc program); peers.probe: ``unik doctor``'s probe guest (the monitor's own floor).
* floor: solo5's own hvt (its ``solo5-hvt`` tender and ``test_hello.hvt``) against the
  probe, the C hello and examples/hello (cold, and restored from its snapshot) under
  ``unik-hvt``, alternated in one run (wall
  and CPU seconds, the load average).  solo5 is not part of unik and CI cannot fetch it:
  ``SOLO5_SRC`` names a solo5 checkout built beforehand (``./configure.sh && make``, which
  needs libseccomp-dev); without it the floor is skipped, saying so.  Written to
  results/hvt_floor.json (with or without ``--floor``).

Medians of RUNS runs.  Needs /dev/kvm, root (namespace, TAP), gcc and libpython3.11-dev.

    python bench/hvt.py                          # everything (the floor too with SOLO5_SRC)
    SOLO5_SRC=/tmp/solo5 python bench/hvt.py --floor   # the floor alone, into results/hvt_floor.json
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hvt_http
from benchlib import alternate, load_average, median_of, merge, table, write
from unik_solo5.hvt_doctor import PROBE
from unik_solo5.hvt_target import MONITOR
from unik_solo5.hvtfs import link

ROOT = Path(__file__).resolve().parents[1]
UNIK = str(Path(sys.executable).parent / "unik")
RUNS = int(os.environ.get("UNIK_BENCH_RUNS", "5"))
HOST, GUEST = "10.80.0.1", "10.80.0.2"


def timed(cmd: list[str]) -> float:
    """Seconds ``cmd`` takes (it must succeed)."""
    start = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return time.monotonic() - start


def median(cmd: list[str]) -> float:
    """Median seconds of RUNS runs of ``cmd`` after one warm-up."""
    timed(cmd)
    return statistics.median(timed(cmd) for _ in range(RUNS))


def build(example: str, tmp: Path, *args: str) -> Path:
    """``examples/<example>`` configured and built for hvt in ``tmp``; the app's directory."""
    app = tmp / example
    shutil.copytree(ROOT / "examples" / example, app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([UNIK, "-q", "configure", "-t", "hvt", *args], cwd=app, check=True, timeout=120)
    subprocess.run([UNIK, "-q", "build"], cwd=app, check=True, timeout=300)
    return app


def memory_floor(elf: Path) -> int:
    """The smallest of a few --mem values (MiB) hello runs in."""
    for mib in (64, 96, 128, 192, 256):
        proc = subprocess.run([str(MONITOR), "--mem", str(mib), str(elf), "--count", "1"], capture_output=True,
                              timeout=120)
        if proc.returncode == 0:
            return mib
    return 0


def http_boot(app: Path, ns: str) -> tuple[float, float]:
    """Seconds from ``unik run`` to the serving line and to the first HTTP response."""
    start = time.monotonic()
    server = subprocess.Popen(["ip", "netns", "exec", ns, UNIK, "run", "--net", "service=hvt0"], cwd=app,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        serving = time.monotonic() - start
        if not line.startswith("serving"):
            raise RuntimeError(f"http did not start: {line!r}")
        prober = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBER, GUEST],
                                capture_output=True, text=True, timeout=60)
        answered = float(prober.stdout.strip() or "nan")
        return serving, answered - start  # CLOCK_MONOTONIC is the same in every namespace
    finally:
        server.terminate()
        server.wait(timeout=30)


PROBER = r"""
import socket, sys, time
deadline = time.monotonic() + 30
socks = []
while time.monotonic() < deadline:
    s = socket.socket(); s.setblocking(False)
    try:
        s.connect((sys.argv[1], 8080))
    except BlockingIOError:
        pass
    socks.append(s)
    time.sleep(0.025)
    for s in list(socks):
        try:
            s.send(b"GET / HTTP/1.0\r\n\r\n")
            if s.recv(12).startswith(b"HTTP/1."):
                print(time.monotonic()); sys.exit(0)
        except (BlockingIOError, OSError):
            pass
sys.exit(1)
"""


def http_boots(http: Path, runs: int) -> list[tuple[float, float]]:
    """``runs`` boots of built examples/http on a TAP in a namespace made here: (serving, first response) seconds."""
    ns = f"unikbenchhvt{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["tuntap", "add", "dev", "hvt0", "mode", "tap", "vnet_hdr"],
                    ["addr", "add", f"{HOST}/24", "dev", "hvt0"], ["link", "set", "hvt0", "up"],
                    ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        return [http_boot(http, ns) for _ in range(runs)]
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def c_hello(tmp: Path) -> Path:
    """A static glibc hello linked with hvt's runtime (the floor for a libc program under unik-hvt)."""
    src = tmp / "c.c"
    src.write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    subprocess.run(["gcc", "-O2", "-c", str(src), "-o", str(tmp / "c.o")], check=True)
    link([tmp / "c.o"], None, tmp / "c.hvt")
    return tmp / "c.hvt"


def profile(elf: Path, *args: str) -> dict[str, object]:
    """Where one run of ``elf`` spends its time, from ``unik-hvt --profile``: the monitor's start-up, the guest's
    time, the runtime's system calls (count, time inside the runtime, the most made)."""
    err = subprocess.run([str(MONITOR), "--profile", str(elf), *args], capture_output=True, text=True,
                         timeout=120).stderr
    monitor = re.search(r"([\d.]+) ms from the monitor's start to the guest's exit: ([\d.]+) ms loading the ELF and "
                        r"creating the VM, ([\d.]+) ms in the guest", err)
    runtime = re.search(r"(\d+) system calls in \d+ ms since the runtime started, ([\d.]+) ms of it inside", err)
    if not monitor or not runtime:
        raise RuntimeError(f"no profile from unik-hvt --profile:\n{err}")
    calls = dict(re.findall(r"\n  ([a-z_0-9]+) (\d+)(?=\n| \()", err))
    return {"total_ms": float(monitor.group(1)), "monitor_start_ms": float(monitor.group(2)),
            "guest_ms": float(monitor.group(3)), "system_calls": int(runtime.group(1)),
            "inside_runtime_ms": float(runtime.group(2)), "calls": {k: int(v) for k, v in calls.items()}}


def main() -> None:
    """Build, measure, print, write results/hvt.json."""
    with tempfile.TemporaryDirectory(prefix="unik-bench-hvt-") as tmpdir:
        tmp = Path(tmpdir)
        hello = build("hello", tmp)
        elf = hello / "dist" / "hello-hvt" / "hello.hvt"
        hello_s = median([str(MONITOR), "--mem", "256", str(elf), "--count", "1"])
        floor = memory_floor(elf)
        c_s = median([str(MONITOR), "--mem", "64", str(c_hello(tmp))])
        probe_s = statistics.median(_probe() for _ in range(RUNS))
        where = profile(elf, "--count", "1")
        http = build("http", tmp, f"--ipv4={GUEST}/24")
        runs = http_boots(http, RUNS)
        serving = statistics.median(r[0] for r in runs)
        first = statistics.median(r[1] for r in runs)
        http_elf = http / "dist" / "http-hvt" / "http.hvt"
        requests = hvt_http.measure(int(os.environ.get("UNIK_BENCH_ROUNDS", "3")))
        rates = requests["rps"]
        unik = {"hello_run_s": hello_s, "hello_elf_bytes": elf.stat().st_size, "hello_mem_floor_mib": floor,
                "http_serving_s": serving, "http_first_response_s": first, "http_elf_bytes": http_elf.stat().st_size,
                "http_rps": rates["hvt"]}
        peers = {"c_hello": {"run_s": c_s}, "probe": {"run_s": probe_s}, "unix_http": {"rps": rates["unix"]}}
        table([("hello: unik-hvt to exit (one line)", f"{hello_s * 1000:.0f} ms"),
               ("hello: ELF", f"{elf.stat().st_size / 1e6:.1f} MB"), ("hello: memory floor", f"{floor} MiB"),
               ("hello: --profile", f"{where['monitor_start_ms']} ms monitor start, {where['guest_ms']} ms guest, "
                                    f"{where['system_calls']} system calls"),
               ("http: unik run to serving", f"{serving * 1000:.0f} ms"),
               ("http: unik run to first HTTP response", f"{first * 1000:.0f} ms"),
               ("http: ELF", f"{http_elf.stat().st_size / 1e6:.1f} MB"),
               ("http: req/s (wrk -c10), hvt", f"{rates['hvt']:.0f}"),
               ("http: req/s (wrk -c10), unix target on unik's stack", f"{rates['unix']:.0f}"),
               ("peer: static C hello", f"{c_s * 1000:.0f} ms"), ("peer: probe guest", f"{probe_s * 1000:.0f} ms")])
        ratios = {"hello_over_c": hello_s / c_s, "http_rps_hvt_over_unix": rates["hvt"] / rates["unix"]}
        write("hvt", unik, peers, ratios, accelerator="kvm")
        merge("hvt", "http_requests", requests)
        print(merge("hvt", "hello_profile", where))
        measured = solo5_floor(tmp, elf)
        if measured is not None:
            print(merge("hvt_floor", "floor", measured))


def floor_only() -> None:
    """``--floor``: build examples/hello, measure the floor, put it in results/hvt_floor.json."""
    if isinstance(solo5_build(), str):
        solo5_floor(Path("."), None)  # says why
        raise SystemExit(1)
    with tempfile.TemporaryDirectory(prefix="unik-bench-hvt-") as tmpdir:
        tmp = Path(tmpdir)
        hello = build("hello", tmp)
        measured = solo5_floor(tmp, hello / "dist" / "hello-hvt" / "hello.hvt")
        if measured is not None:
            print(merge("hvt_floor", "floor", measured))


SOLO5_HOWTO = ("SOLO5_SRC=<a solo5 checkout built with ./configure.sh && make (needs libseccomp-dev)> "
               "python bench/hvt.py --floor")


def solo5_build() -> tuple[Path, Path, str] | str:
    """solo5's hvt tender, its hello test and how they were built, from ``SOLO5_SRC``; else why not."""
    src = os.environ.get("SOLO5_SRC")
    if not src:
        return f"SOLO5_SRC is not set: {SOLO5_HOWTO}"
    tender, hello = Path(src, "tenders", "hvt", "solo5-hvt"), Path(src, "tests", "test_hello", "test_hello.hvt")
    for path in (tender, hello):
        if not path.is_file():
            return f"{path} is missing: build the checkout first (cd {src} && ./configure.sh && make)"
    version = subprocess.run(["git", "-C", src, "describe", "--tags", "--always", "--dirty"], capture_output=True,
                             text=True).stdout.strip() or "(not a git checkout)"
    cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return tender, hello, f"solo5 {version}, ./configure.sh && make ({cc}), outside the project"


def _wall_cpu(cmd: list[str], ok: int, cpu: list[float | None]) -> float | None:
    """Wall seconds of ``cmd`` (``None`` unless it exits ``ok``); its CPU seconds appended to ``cpu``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, timeout=120)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    good = done.returncode == ok
    cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime if good else None)
    return wall if good else None


def solo5_floor(tmp: Path, hello_elf: Path | None) -> dict[str, object] | None:
    """solo5's hvt hello against unik-hvt's probe, C hello and (``hello_elf``) examples/hello; ``None``
    (saying why) without ``SOLO5_SRC``."""
    built = solo5_build()
    if isinstance(built, str):
        print(f"floor (solo5's own hvt): not measured: {built}")
        return None
    tender, solo5_hello, how = built
    runs: dict[str, list[str]] = {
        "solo5_hvt_hello": [str(tender), "--mem=32", str(solo5_hello), "hello"],
        "unik_probe": [str(MONITOR), "--mem", "16", str(PROBE)],
        "unik_c_hello": [str(MONITOR), "--mem", "64", str(c_hello(tmp))],
    }
    status = {"unik_probe": 42}
    if hello_elf is not None:
        runs["unik_hello"] = [str(MONITOR), "--mem", "256", str(hello_elf), "--count", "1"]
        snapshot = hello_elf.with_suffix(".snap")
        if snapshot.is_file():  # restored from unik build's pre-initialised snapshot, as unik run does
            runs["unik_hello_snapshot"] = [str(MONITOR), "--mem", "256", "--snapshot", str(snapshot), str(hello_elf),
                                           "--count", "1"]
    cpu: dict[str, list[float | None]] = {name: [] for name in runs}
    load = load_average()
    walls = alternate({name: (lambda n=name: _wall_cpu(runs[n], status.get(n, 0), cpu[n])) for name in runs},
                      max(RUNS, 5))
    figures: dict[str, dict[str, Any]] = {name: {"run_s": median_of(walls[name]), "cpu_s": median_of(cpu[name])}
                                          for name in runs}
    figures["solo5_hvt_hello"].update(elf_bytes=solo5_hello.stat().st_size, built=how,
                                      command="solo5-hvt --mem=32 test_hello.hvt hello")
    after = load_average()
    table([*((f"floor: {name}", f"{d['run_s'] * 1000:.0f} ms wall, {d['cpu_s'] * 1000:.0f} ms CPU")
             for name, d in figures.items() if d["run_s"] is not None and d["cpu_s"] is not None),
           ("floor: load average (before, after)", f"{load} {after}")])
    out: dict[str, object] = {**figures, "load_average_before": load, "load_average_after": after,
                              "rounds": max(RUNS, 5)}
    return out


def _probe() -> float:
    """Seconds of one run of the probe guest (it exits 42)."""
    start = time.monotonic()
    subprocess.run([str(MONITOR), "--mem", "16", str(PROBE)], capture_output=True, timeout=60)
    return time.monotonic() - start


if __name__ == "__main__":
    floor_only() if sys.argv[1:] == ["--floor"] else main()
