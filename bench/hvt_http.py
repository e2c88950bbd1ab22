"""Request rate of examples/http under hvt against the unix target, and what a request costs the unikernel.

* rps: ``wrk -t1 -c10 -d3s`` (after a 1 s warm-up) against examples/http under hvt and on
  the unix target (unik's stack over the same TAP, in one network namespace made here),
  alternating rounds (and hvt at ``--baseline REV`` too, built by that revision's unik);
  medians, with the server's CPU time per request (its process tree, from /proc).
* per_request: from ``unik-hvt --profile`` (a run under the same load, less an idle run
  of the same length): KVM's exits (every one: traps, page faults, hypercalls), the
  hypercalls (exits to the monitor), the event loop's turns, the system calls the runtime
  served and how many of them trapped (not direct).
* idle_cpu: the monitor's CPU time over 2 s of idleness after serving, as a share of the
  wall time (an idle unikernel must not spin).

Needs /dev/kvm, root (namespace, TAP), wrk, gcc and libpython3.11-dev.

    python bench/hvt_http.py [--baseline REV] [--rounds N]     # results/hvt_http.json, and hvt.json's figures
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
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchlib import RESULTS, alternate, baseline_unik, load_average, merge, table

sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suites' served_support

from served_support import stop

ROOT = Path(__file__).resolve().parents[1]
UNIK = str(Path(sys.executable).parent / "unik")
HOST, GUEST = "10.80.1.1", "10.80.1.2"
SECONDS = 3


def build(unik: str, target: str, tmp: Path) -> Path:
    """examples/http configured for ``target`` at GUEST and built by the ``unik`` command; the app's directory."""
    app = tmp / target / "http"
    shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([unik, "-q", "configure", "-t", target, f"--ipv4={GUEST}/24"], cwd=app, check=True, timeout=120)
    subprocess.run([unik, "-q", "build"], cwd=app, check=True, timeout=600)
    return app


@contextmanager
def tap_namespace(name: str, host: str) -> Iterator[str]:
    """A network namespace ``name`` holding the TAP ``hvt0`` at ``host``/24 (with a virtio-net header); removed
    after."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["tuntap", "add", "dev", "hvt0", "mode", "tap", "vnet_hdr"],
                    ["addr", "add", f"{host}/24", "dev", "hvt0"], ["link", "set", "hvt0", "up"],
                    ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def wrk(ns: str, seconds: int) -> tuple[float, int]:
    """(req/s, requests) of ``wrk -t1 -c10`` against GUEST:8080 from ``ns``."""
    out = subprocess.run(["ip", "netns", "exec", ns, "wrk", "-t1", "-c10", f"-d{seconds}s", f"http://{GUEST}:8080/"],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps, done = re.search(r"Requests/sec:\s+([\d.]+)", out), re.search(r"(\d+) requests in", out)
    if not rps or not done:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(rps.group(1)), int(done.group(1))


def tree_cpu(root: int) -> float:
    """CPU seconds (user and system) of process ``root`` and its descendants so far."""
    children: dict[int, list[tuple[int, float]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children.setdefault(int(fields[1]), []).append((int(entry.name), cpu))
    total, todo = 0.0, [root]
    while todo:
        for pid, cpu in children.get(todo.pop(), []):
            total += cpu
            todo.append(pid)
    return total


@contextmanager
def serving(ns: str, unik: str, app: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``unik run`` of ``app`` in ``ns`` once it says it is serving; stopped with SIGTERM after."""
    server = subprocess.Popen(["ip", "netns", "exec", ns, unik, "run", "--net", "service=hvt0", *args], cwd=app,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if not server.stdout.readline().startswith("serving"):
            raise RuntimeError(f"examples/http did not start in {app}")
        yield server
    finally:
        stop(server)


def rate(ns: str, unik: str, app: Path, cpu: list[float]) -> float:
    """req/s of one served run (after a warm-up: ARP, the first connections); appends its CPU us per request."""
    with serving(ns, unik, app) as server:
        wrk(ns, 1)
        before = tree_cpu(server.pid)
        rps, done = wrk(ns, SECONDS)
        cpu.append(round((tree_cpu(server.pid) - before) / done * 1e6, 1))
        return rps


def profile_counts(stderr: str) -> dict[str, float | None]:
    """What ``--profile`` counted in a run: exits (KVM's), hypercalls, turns, system calls, traps."""
    kvm = re.search(r"KVM's counts for the vCPU:.* exits (\d+)", stderr)
    calls, direct = re.search(r"(\d+) system calls in", stderr), re.search(r"(\d+) of them direct", stderr)
    turns = re.search(r"(\d+) turns of the event loop", stderr)
    monitor = stderr[stderr.find("ms of that serving hypercalls"):]
    hypercalls = sum(int(n) for n in re.findall(r"\n  [a-z ]+ (\d+) \([\d.]+ ms\)", monitor))
    total = int(calls.group(1)) if calls else 0
    return {"exits": int(kvm.group(1)) if kvm else None, "hypercalls": hypercalls,
            "turns": int(turns.group(1)) if turns else None, "system_calls": total,
            "traps": total - (int(direct.group(1)) if direct else 0)}


def per_request(ns: str, unik: str, app: Path) -> dict[str, float | None]:
    """``--profile``'s counts per request under wrk, less those of an idle run as long (boot, timers); ``None``:
    that monitor does not count it."""
    with serving(ns, unik, app, "--profile") as idle:
        time.sleep(1 + SECONDS)
    assert idle.stderr is not None
    base = profile_counts(idle.stderr.read())
    with serving(ns, unik, app, "--profile") as loaded:
        requests = wrk(ns, 1)[1] + wrk(ns, SECONDS)[1]
    assert loaded.stderr is not None
    got = profile_counts(loaded.stderr.read())
    out: dict[str, float | None] = {}
    for key, value in got.items():
        idle_value = base[key]
        out[key] = None if value is None or idle_value is None else round((value - idle_value) / requests, 3)
    return out


def idle_cpu(ns: str, unik: str, app: Path) -> float:
    """The monitor's CPU time over 2 s of idleness after a served burst, as a share of the wall time."""
    with serving(ns, unik, app) as server:
        wrk(ns, 1)
        time.sleep(0.5)
        before, start = tree_cpu(server.pid), time.monotonic()
        time.sleep(2)
        return round((tree_cpu(server.pid) - before) / (time.monotonic() - start), 4)


def measure(rounds: int, baseline: str | None = None) -> dict[str, Any]:
    """Build, measure (hvt, unix and hvt at ``baseline`` alternating), print; the results' section."""
    with tempfile.TemporaryDirectory(prefix="unik-bench-hvthttp-") as tmpdir:
        tmp = Path(tmpdir)
        apps: dict[str, tuple[str, Path]] = {"hvt": (UNIK, build(UNIK, "hvt", tmp / "now")),
                                             "unix": (UNIK, build(UNIK, "unix", tmp / "now"))}
        if baseline:
            short, old = baseline_unik(baseline)
            apps[f"hvt@{short}"] = (str(old), build(str(old), "hvt", tmp / short))
        cpu: dict[str, list[float]] = {name: [] for name in apps}
        load = load_average()
        with tap_namespace(f"unikbenchhvthttp{os.getpid()}", HOST) as ns:
            def one(name: str) -> Callable[[], float]:
                return lambda: rate(ns, apps[name][0], apps[name][1], cpu[name])
            rps = alternate({name: one(name) for name in apps}, rounds)
            counts = {name: per_request(ns, *apps[name]) for name in apps if name.startswith("hvt")}
            idle = idle_cpu(ns, *apps["hvt"])
        load = [round(max(a, b), 2) for a, b in zip(load, load_average(), strict=True)]
    result: dict[str, Any] = {
        "rps": {name: statistics.median(v for v in got if v is not None) for name, got in rps.items()},
        "rps_runs": rps, "cpu_us_per_request": {name: statistics.median(v) for name, v in cpu.items()},
        "per_request": counts, "idle_monitor_cpu_share": idle, "load_average": load, "rounds": rounds,
        "wrk": f"-t1 -c10 -d{SECONDS}s"}
    rows = [(f"req/s, {name}", f"{result['rps'][name]:.0f} ({result['cpu_us_per_request'][name]:.0f} us CPU/request)")
            for name in apps]
    rows += [(f"per request, {name}", ", ".join(f"{k} {v}" for k, v in c.items())) for name, c in counts.items()]
    rows += [("idle monitor CPU", f"{idle:.1%} of the wall time"), ("load average (max of start, end)", str(load))]
    table(rows)
    return result


def main() -> None:
    """Measure; write ``http_requests`` into results/hvt_http.json and the figures into results/hvt.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", help="also measure hvt as unik at this git revision builds it")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("UNIK_BENCH_ROUNDS", "3")))
    args = parser.parse_args()
    got = measure(args.rounds, args.baseline)
    merge("hvt_http", "http_requests", got)
    print(headline(got))


def headline(got: dict[str, Any]) -> Path:
    """Put a run's figures into results/hvt.json too: its http_requests, and bench/hvt.py's req/s and ratio."""
    path = RESULTS / "hvt.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    hvt, unix = got["rps"]["hvt"], got["rps"]["unix"]
    merge("hvt", "unik", {**data.get("unik", {}), "http_rps": hvt})
    merge("hvt", "peers", {**data.get("peers", {}), "unix_http": {"rps": unix}})
    merge("hvt", "ratios", {**data.get("ratios", {}), "http_rps_hvt_over_unix": round(hvt / unix, 4)})
    return merge("hvt", "http_requests", got)

if __name__ == "__main__":
    main()
