"""Shared helpers of the benchmarks: timing, machine facts, the results file."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    """Facts about the machine the figures come from."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "kernel": platform.release(), "machine": platform.machine(),
    }


def median_seconds(fn: Callable[[], object], runs: int, warmup: int = 2) -> float:
    """The median wall time of ``runs`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write(name: str, unik: Mapping[str, object], peers: Mapping[str, Mapping[str, object]],
          ratios: Mapping[str, object], accelerator: str | None = None) -> Path:
    """Write ``results/<name>.json`` (the figures, the machine's facts, the accelerator); its path.

    The figures are JSON values: mostly numbers, ``None`` for one not measured, strings and
    nested objects for notes and breakdowns.
    """
    RESULTS.mkdir(exist_ok=True)
    data = {"unik": dict(unik), "peers": {k: dict(v) for k, v in peers.items()},
            "ratios": dict(ratios), "machine": machine(), "accelerator": accelerator}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def table(rows: list[tuple[str, str]]) -> None:
    """Print figure/value rows aligned."""
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def load_average() -> list[float]:
    """The host's 1, 5 and 15-minute load averages (the machine may be shared: say how busy it was)."""
    return [round(x, 2) for x in os.getloadavg()]


def baseline_unik(rev: str) -> tuple[str, Path]:
    """The ``unik`` command of unik at git revision ``rev``: (its short hash, the command's path).

    The revision's tree (``git archive``) gets a virtual environment of its own with every
    distribution installed as that revision's ``make venv`` does, under
    ``build/bench-baseline/<hash>/`` and reused by later runs (about two minutes the first time).
    """
    parsed = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", f"{rev}^{{commit}}"],
                            capture_output=True, text=True)
    if parsed.returncode:
        raise SystemExit(f"--baseline {rev}: not a revision of {REPO}: {parsed.stderr.strip()}")
    short = parsed.stdout.strip()
    tree = REPO / "build" / "bench-baseline" / short
    unik = tree / ".venv" / "bin" / "unik"
    if not unik.exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", short], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        print(f"  (installing unik {short} into {tree}/.venv with its make venv)")
        made = subprocess.run(["make", "-C", str(tree), "venv"], capture_output=True, text=True)
        if made.returncode or not unik.exists():
            raise SystemExit(f"--baseline {rev}: make venv in {tree} failed:\n"
                             f"{made.stdout[-2000:]}{made.stderr[-2000:]}")
    return short, unik


def alternate(measures: Mapping[str, Callable[[], float | None]], rounds: int) -> dict[str, list[float | None]]:
    """Each of ``measures`` once per round, in turn, the order reversed every other round.

    Two versions measured this way in one run see the same neighbours on a shared machine.
    """
    names = list(measures)
    got: dict[str, list[float | None]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            got[name].append(measures[name]())
    return got


def median_of(values: list[float | None]) -> float | None:
    """The median of ``values`` to the millisecond, or ``None`` if any run failed."""
    got = [v for v in values if v is not None]
    return round(statistics.median(got), 4) if got and len(got) == len(values) else None


def merge(name: str, key: str, section: Mapping[str, Any]) -> Path:
    """Put ``section`` under ``key`` of ``results/<name>.json``, keeping the file's other keys."""
    path = RESULTS / f"{name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = dict(section)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def head_revision() -> str:
    """The checkout's short hash, with ``+changes`` when its tracked files (results aside) differ from it."""
    short = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", ".", ":!bench/results"]).returncode
    return short + ("+changes" if dirty else "")


def example_copy(example: str, source: Path, dest: Path) -> Path:
    """``examples/<example>`` of the tree ``source`` copied to ``dest`` (without build outputs)."""
    shutil.copytree(source / "examples" / example, dest,
                    ignore=shutil.ignore_patterns("_build", "dist", "__pycache__", "*.egg-info"))
    return dest


def timed_command(cmd: list[str], cwd: Path | None = None, cpu: list[float | None] | None = None) -> float | None:
    """Seconds ``cmd`` takes to exit, its output discarded; ``None`` if it fails.

    ``cpu`` gets the CPU seconds (user and system) ``cmd`` and its children used: a figure a
    busy neighbour on a shared machine hardly moves, unlike the wall time.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        cpu.append(used if done.returncode == 0 else None)
    return elapsed if done.returncode == 0 else None


def report_baseline(name: str, title: str, short: str, rounds: int, head: Mapping[str, float | None],
                    base: Mapping[str, float | None], load_before: list[float], **extra: object) -> None:
    """Today's medians against the baseline's, their ratios and the load average: printed, and
    merged under ``baseline`` into ``results/<name>.json``."""
    ratios = {k: round(v / b, 3) if v and (b := base.get(k)) else None for k, v in head.items()}
    load_after, revision = load_average(), head_revision()
    section = {"head": revision, "baseline": short, "rounds": rounds, **extra, "head_figures": dict(head),
               "baseline_figures": dict(base), "ratios_head_over_baseline": ratios,
               "load_average_before": load_before, "load_average_after": load_after}
    path = merge(name, "baseline", section)
    print(f"{title}, unik {revision} against {short} (medians of {rounds} alternating rounds; "
          f"load {load_before[0]} before, {load_after[0]} after):")
    table([(k, f"{head[k]} s  vs  {base.get(k)} s  ratio {ratios[k]}") for k in head])
    print(f"wrote {path}")


#: The Debian package of each tool a benchmark may need, where it is not the tool's own name.
PACKAGES = {"ip": "iproute2", "qemu-system-x86_64": "qemu-system-x86"}


def tap_missing(*tools: str) -> str | None:
    """Why a benchmark on TAP devices in network namespaces cannot run here (root, a usable
    /dev/net/tun, iproute2, then each of ``tools``), or ``None``."""
    from unik.testing import tap_unavailable

    problem = tap_unavailable()
    if problem:
        return problem
    for tool in tools:
        if shutil.which(tool) is None:
            return f"needs `{tool}` (apt-get install {PACKAGES.get(tool, tool)})"
    return None


def unik_kernel_table(unik: Mapping[str, object], kernel: Mapping[str, object], ratios: Mapping[str, object],
                      *more: tuple[str, Mapping[str, object]]) -> None:
    """Print unik's figures, the kernel's, their ratios and any ``(label, figures)`` more, then the load."""
    rows = [(f"unik {k}", str(v)) for k, v in sorted(unik.items())]
    rows += [(f"kernel {k}", str(v)) for k, v in sorted(kernel.items())]
    for label, figures in (("unik/kernel", ratios), *more):
        rows += [(f"{label} {k}", str(v)) for k, v in sorted(figures.items())]
    table([*rows, ("load average", " ".join(f"{x:.1f}" for x in os.getloadavg()))])


def veth_between(client_ns: str, server_ns: str, veth: str, client_addr: str, server_addr: str) -> None:
    """A veth pair from ``client_ns`` (``veth``, ``client_addr``) to ``server_ns`` (``veth``p,
    ``server_addr``), both ends and both namespaces' loopbacks up: the kernel's side of a peer."""
    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=60)
    ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
    ip("link", "set", veth, "netns", client_ns)
    ip("link", "set", f"{veth}p", "netns", server_ns)
    ip("-n", client_ns, "addr", "add", client_addr, "dev", veth)
    ip("-n", server_ns, "addr", "add", server_addr, "dev", f"{veth}p")
    for ns, dev in ((client_ns, veth), (server_ns, f"{veth}p"), (client_ns, "lo"), (server_ns, "lo")):
        ip("-n", ns, "link", "set", dev, "up")
