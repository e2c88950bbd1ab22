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
* snapshot (also alone: ``--snapshot``): pre-initialised unikernels, cold boots against
  restores of the snapshot ``unik build`` saved, alternated round by round: ``unik run`` of
  examples/http to "serving" and to the first HTTP response (``--no-snapshot`` against the
  default), the same from ``unik-hvt`` started directly (without unik's CLI), hello under
  ``unik-hvt`` cold, restored and restored with ``--snapshot-mmap`` (the pages mapped from
  the file, loaded as touched, instead of read in) and their ``--profile`` (the guest's
  time, system calls, KVM's exits), the snapshot's size on disk and the time saving it adds
  to a build; the load average with each group.  Written to results/hvt_snapshot.json.
* floor: solo5's own hvt (its ``solo5-hvt`` tender and ``test_hello.hvt``) against the
  probe, the C hello and examples/hello (cold, and restored from its snapshot) under
  ``unik-hvt``, alternated in one run (wall
  and CPU seconds, the load average).  solo5 is not part of unik and CI cannot fetch it:
  ``SOLO5_SRC`` names a solo5 checkout built beforehand (``./configure.sh && make``, which
  needs libseccomp-dev); without it the floor is skipped, saying so.  Written to
  results/hvt_floor.json (with or without ``--floor``).

Medians of RUNS runs.  Needs /dev/kvm, root (namespace, TAP), gcc and libpython3.11-dev.

    python bench/hvt.py                          # everything (the floor too with SOLO5_SRC)
    python bench/hvt.py --snapshot               # cold boots against restores alone, into results/hvt_snapshot.json
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
from functools import partial
from pathlib import Path
from typing import Any

import hvt_http
from benchlib import alternate, load_average, median_of, merge, table, write
from unik_solo5 import hvt_snapshot
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


def http_boot(app: Path, ns: str, *args: str, command: list[str] | None = None) -> tuple[float, float]:
    """Seconds from ``unik run ARGS`` (or ``command``) to the serving line and to the first HTTP response.

    The prober (a Python process in ``ns``) is started first and told to begin when the serving line comes, so
    that its own start-up is not counted; it connects every 5 ms until a response comes.
    """
    prober = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PROBER, GUEST],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert prober.stdin is not None and prober.stdout is not None
    if prober.stdout.readline().strip() != "ready":
        raise RuntimeError("the prober did not start")
    start = time.monotonic()
    server = subprocess.Popen(["ip", "netns", "exec", ns, *(command or [UNIK, "run", "--net", "service=hvt0", *args])],
                              cwd=app, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        serving = time.monotonic() - start
        if not line.startswith("serving"):
            raise RuntimeError(f"http did not start: {line!r}")
        prober.stdin.write("go\n")
        prober.stdin.flush()
        answered = float(prober.stdout.readline().strip() or "nan")
        return serving, answered - start  # CLOCK_MONOTONIC is the same in every namespace
    finally:
        prober.kill()
        prober.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)


PROBER = r"""
import socket, sys, time
print("ready", flush=True)
sys.stdin.readline()
deadline = time.monotonic() + 30
socks = []
while time.monotonic() < deadline:
    s = socket.socket(); s.setblocking(False)
    try:
        s.connect((sys.argv[1], 8080))
    except BlockingIOError:
        pass
    socks.append(s)
    time.sleep(0.005)
    for s in list(socks):
        try:
            s.send(b"GET / HTTP/1.0\r\n\r\n")
            if s.recv(12).startswith(b"HTTP/1."):
                print(time.monotonic(), flush=True); sys.exit(0)
        except (BlockingIOError, OSError):
            pass
sys.exit(1)
"""


#: A kind of boot: ``unik run``'s extra arguments, or (``direct``) the monitor's command that ``unik run`` shows
#: (``--dry-run``) for those arguments, started without unik's CLI.
Boot = tuple[tuple[str, ...], bool]


def http_boots(http: Path, runs: int, kinds: dict[str, Boot] | None = None) -> dict[str, list[tuple[float, float]]]:
    """``runs`` rounds of boots of built examples/http on a TAP in a namespace made here, one boot of each
    kind per round (default: one ``unik run``): (serving, first response) seconds."""
    kinds = kinds or {"run": ((), False)}
    with hvt_http.tap_namespace(f"unikbenchhvt{os.getpid()}", HOST) as ns:
        commands = {name: monitor_command(http, ns, *args) if direct else None
                    for name, (args, direct) in kinds.items()}
        out: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
        for _ in range(runs):
            for name, (args, _) in kinds.items():
                out[name].append(http_boot(http, ns, *args, command=commands[name]))
        return out


def monitor_command(app: Path, ns: str, *args: str) -> list[str]:
    """The command ``unik run --net service=hvt0 ARGS`` starts in ``ns`` (its ``--dry-run``)."""
    shown = subprocess.run(["ip", "netns", "exec", ns, UNIK, "run", "--dry-run", "--net", "service=hvt0", *args],
                           cwd=app, capture_output=True, text=True, check=True).stdout
    return shown.strip().splitlines()[-1].split()



def c_hello(tmp: Path) -> Path:
    """A static glibc hello linked with hvt's runtime (the floor for a libc program under unik-hvt)."""
    src = tmp / "c.c"
    src.write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    subprocess.run(["gcc", "-O2", "-c", str(src), "-o", str(tmp / "c.o")], check=True)
    link([tmp / "c.o"], None, tmp / "c.hvt")
    return tmp / "c.hvt"


def profile(elf: Path, *args: str, monitor_args: tuple[str, ...] = ()) -> dict[str, object]:
    """Where one run of ``elf`` spends its time, from ``unik-hvt --profile``: the monitor's start-up, the guest's
    time, the runtime's system calls (count, time inside the runtime, the most made), KVM's exits."""
    err = subprocess.run([str(MONITOR), "--profile", *monitor_args, str(elf), *args], capture_output=True, text=True,
                         timeout=120).stderr
    monitor = re.search(r"([\d.]+) ms from the monitor's start to the guest's exit: ([\d.]+) ms loading the ELF and "
                        r"creating the VM, ([\d.]+) ms in the guest", err)
    runtime = re.search(r"(\d+) system calls in \d+ ms since the runtime (?:started|resumed from its snapshot), "
                        r"([\d.]+) ms of it inside", err)
    if not monitor or not runtime:
        raise RuntimeError(f"no profile from unik-hvt --profile:\n{err}")
    calls = dict(re.findall(r"\n  ([a-z_0-9]+) (\d+)(?=\n| \()", err))
    exits = re.search(r"KVM's counts for the vCPU:.* exits (\d+)", err)
    return {"total_ms": float(monitor.group(1)), "monitor_start_ms": float(monitor.group(2)),
            "guest_ms": float(monitor.group(3)), "system_calls": int(runtime.group(1)),
            "inside_runtime_ms": float(runtime.group(2)), "calls": {k: int(v) for k, v in calls.items()},
            "kvm_exits": int(exits.group(1)) if exits else 0}


def medians(rounds: list[tuple[float, float]]) -> tuple[float, float]:
    """The medians of (serving, first response) rounds."""
    return statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)


def snapshot_figures(hello: Path, http: Path) -> dict[str, object]:
    """Cold boots against restores (the module's docstring), alternated; the ``snapshot`` section of results."""
    elf = hello / "dist" / "hello-hvt" / "hello.hvt"
    http_elf = http / "dist" / "http-hvt" / "http.hvt"
    snap = hvt_snapshot.snapshot_file(http_elf)
    saves = []
    for _ in range(3):  # what pre-initialising adds to unik build: the boot to the snapshot point and the record
        start = time.monotonic()
        hvt_snapshot.save(MONITOR, http_elf)
        saves.append(time.monotonic() - start)
    out: dict[str, object] = {"http_snapshot_bytes": snap.stat().st_size,
                              "http_snapshot_disk_bytes": snap.stat().st_blocks * 512,
                              "http_snapshot_pages": hvt_snapshot.read_header(snap).pages,
                              "http_save_s": statistics.median(saves), "load_average_save": load_average()}
    hello_cmd = [str(MONITOR), "--mem", "256", str(elf), "--count", "1"]
    restore = ("--snapshot", str(hvt_snapshot.snapshot_file(elf)))
    commands = {"cold": hello_cmd, "restored": [*hello_cmd[:3], *restore, *hello_cmd[3:]],
                "restored_mmap": [*hello_cmd[:3], *restore, "--snapshot-mmap", *hello_cmd[3:]]}
    out["load_average_hello"] = load_average()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():
        timed(cmd)
    for _ in range(RUNS):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    for name in commands:
        out[f"hello_{name}_s"] = statistics.median(times[name])
    out["hello_profile_cold"] = profile(elf, "--count", "1")
    out["hello_profile_restored"] = profile(elf, "--count", "1", monitor_args=restore)
    out["hello_profile_restored_mmap"] = profile(elf, "--count", "1", monitor_args=(*restore, "--snapshot-mmap"))
    out["load_average_http"] = load_average()
    boots = http_boots(http, RUNS, {"cold": (("--no-snapshot",), False), "restored": ((), False),
                                    "cold_monitor": (("--no-snapshot",), True), "restored_monitor": ((), True)})
    out["load_average_http_after"] = load_average()
    for name, rounds in boots.items():
        out[f"http_{name}_serving_s"], out[f"http_{name}_first_response_s"] = medians(rounds)
    return out


def print_snapshot(f: dict[str, object]) -> None:
    """The snapshot section as a table."""
    def ms(key: str) -> str:
        return f"{float(str(f[key])) * 1000:.0f} ms"

    cold, restored, mapped = f["hello_profile_cold"], f["hello_profile_restored"], f["hello_profile_restored_mmap"]
    assert isinstance(cold, dict) and isinstance(restored, dict) and isinstance(mapped, dict)
    table([("http: unik run to serving, cold / restored", f"{ms('http_cold_serving_s')} / "
                                                           f"{ms('http_restored_serving_s')}"),
           ("http: unik run to first HTTP response, cold / restored",
            f"{ms('http_cold_first_response_s')} / {ms('http_restored_first_response_s')}"),
           ("http: unik-hvt to first HTTP response, cold / restored",
            f"{ms('http_cold_monitor_first_response_s')} / {ms('http_restored_monitor_first_response_s')}"),
           ("  load average (before, after)", f"{f['load_average_http']} {f['load_average_http_after']}"),
           ("hello: unik-hvt to exit, cold / restored / restored --snapshot-mmap",
            f"{ms('hello_cold_s')} / {ms('hello_restored_s')} / {ms('hello_restored_mmap_s')}"),
           ("hello: guest, cold / restored / restored --snapshot-mmap",
            f"{cold['guest_ms']} ms / {restored['guest_ms']} ms / {mapped['guest_ms']} ms"),
           ("hello: system calls, cold / restored", f"{cold['system_calls']} / {restored['system_calls']}"),
           ("hello: KVM exits, cold / restored / restored --snapshot-mmap",
            f"{cold['kvm_exits']} / {restored['kvm_exits']} / {mapped['kvm_exits']}"),
           ("  load average", str(f["load_average_hello"])),
           ("http: snapshot on disk", f"{int(str(f['http_snapshot_disk_bytes'])) / 1e6:.1f} MB "
                                      f"({f['http_snapshot_pages']} pages)"),
           ("http: saving it adds to unik build", f"{ms('http_save_s')} (load {f['load_average_save']})")])


def main() -> None:
    """Build, measure, print, write results/hvt.json."""
    with tempfile.TemporaryDirectory(prefix="unik-bench-hvt-") as tmpdir:
        tmp = Path(tmpdir)
        if "--snapshot" in sys.argv[1:]:
            figures = snapshot_figures(build("hello", tmp), build("http", tmp, f"--ipv4={GUEST}/24"))
            print_snapshot(figures)
            print(merge("hvt_snapshot", "snapshot", figures))
            return
        hello = build("hello", tmp)
        elf = hello / "dist" / "hello-hvt" / "hello.hvt"
        hello_s = median([str(MONITOR), "--mem", "256", str(elf), "--count", "1"])
        floor = memory_floor(elf)
        c_s = median([str(MONITOR), "--mem", "64", str(c_hello(tmp))])
        probe_s = statistics.median(_probe() for _ in range(RUNS))
        where = profile(elf, "--count", "1")
        http = build("http", tmp, f"--ipv4={GUEST}/24")
        serving, first = medians(http_boots(http, RUNS)["run"])
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
        figures = snapshot_figures(hello, http)
        print_snapshot(figures)
        print(merge("hvt_snapshot", "snapshot", figures))
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
    walls = alternate({name: partial(_wall_cpu, runs[name], status.get(name, 0), cpu[name]) for name in runs},
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
