"""Cold boots of the hvt unikernel (no snapshot): where the guest's time goes, and unik at ``--baseline REV``.

* hello: ``examples/hello`` under ``unik-hvt --profile ... --count 1`` without a snapshot:
  the monitor's start to the guest's exit, the guest's own time (``--profile``: rdtsc in
  the guest, which a busy neighbour moves less than the wall clock), the system calls the
  runtime served and how many of them trapped.
* http: ``examples/http`` booted cold by ``unik-hvt`` itself on a TAP in a namespace made
  here: to its "serving" line and to the first HTTP response (bench/hvt.py's prober, which
  begins at the serving line); and the same through ``unik run --no-snapshot``, which
  adds unik's own start-up on the host.

Each figure is the median of alternating rounds of this checkout's unik and, with
``--baseline REV``, of the unikernels REV's unik builds (run by REV's monitor).  Needs
/dev/kvm, root, gcc and libpython3.11-dev.

    python bench/hvt_cold.py [--baseline REV] [--rounds N]     # results/hvt_cold.json
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import alternate, baseline_unik, head_revision, load_average, merge, table
from hvt import GUEST, HOST, http_boot

ROOT = Path(__file__).resolve().parents[1]
UNIK = str(Path(sys.executable).parent / "unik")


def build(unik: str, example: str, tmp: Path, *configure: str) -> Path:
    """``examples/<example>`` configured for hvt and built by the ``unik`` command; its ELF."""
    app = tmp / example
    shutil.copytree(ROOT / "examples" / example, app, ignore=shutil.ignore_patterns("_build", "dist"))
    subprocess.run([unik, "-q", "configure", "-t", "hvt", *configure], cwd=app, check=True, timeout=120)
    subprocess.run([unik, "-q", "build"], cwd=app, check=True, timeout=600)
    return app / "dist" / f"{example}-hvt" / f"{example}.hvt"


def monitor_of(unik: str) -> str:
    """The ``unik-hvt`` beside the unik-target-solo5 that the ``unik`` command's Python imports."""
    python = str(Path(unik).parent / "python")
    return subprocess.run([python, "-c", "from unik_solo5.hvt_target import MONITOR; print(MONITOR)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def hello(monitor: str, elf: Path) -> dict[str, float]:
    """One cold boot of hello under ``--profile``: ms to exit, ms in the guest, system calls, traps."""
    start = time.monotonic()
    err = subprocess.run([monitor, "--profile", str(elf), "--count", "1"], capture_output=True, text=True,
                         timeout=120).stderr
    total_ms = (time.monotonic() - start) * 1000
    guest = re.search(r"([\d.]+) ms in the guest", err)
    calls = re.search(r"(\d+) system calls in", err)
    direct = re.search(r"(\d+) of them direct", err)
    if not guest or not calls:
        raise RuntimeError(f"no profile from {monitor}:\n{err}")
    return {"run_ms": total_ms, "guest_ms": float(guest.group(1)), "system_calls": int(calls.group(1)),
            "traps": int(calls.group(1)) - (int(direct.group(1)) if direct else 0)}


def http(ns: str, cmd: list[str], cwd: Path) -> tuple[float, float]:
    """ms from starting ``cmd`` (in ``ns``) to its serving line and to the first HTTP response (bench/hvt.py's
    prober, started before and told to begin at the serving line)."""
    serving, first = http_boot(cwd, ns, command=cmd)
    return serving * 1000, first * 1000


def measure(rounds: int, baseline: str | None) -> dict[str, Any]:
    """Build, measure alternating rounds, print; the results' section."""
    uniks = {"head": UNIK}
    if baseline:
        short, old = baseline_unik(baseline)
        uniks[short] = str(old)
    ns = f"unikbenchhvtcold{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="unik-bench-hvtcold-") as tmpdir:
        tmp = Path(tmpdir)
        elfs = {name: (build(unik, "hello", tmp / name), build(unik, "http", tmp / name, f"--ipv4={GUEST}/24"))
                for name, unik in uniks.items()}
        monitors = {name: monitor_of(unik) for name, unik in uniks.items()}
        subprocess.run(["ip", "netns", "add", ns], check=True)
        load = load_average()
        try:
            for cmd in (["tuntap", "add", "dev", "hvt0", "mode", "tap", "vnet_hdr"],
                        ["addr", "add", f"{HOST}/24", "dev", "hvt0"], ["link", "set", "hvt0", "up"],
                        ["link", "set", "lo", "up"]):
                subprocess.run(["ip", "-n", ns, *cmd], check=True)
            hellos: dict[str, list[dict[str, float]]] = {name: [] for name in uniks}
            boots: dict[str, list[tuple[float, float]]] = {name: [] for name in [*uniks, "unik run --no-snapshot"]}

            def hello_of(name: str) -> Callable[[], None]:
                def one() -> None:
                    hellos[name].append(hello(monitors[name], elfs[name][0]))
                return one

            def http_of(name: str, cmd: list[str], cwd: Path) -> Callable[[], None]:
                def one() -> None:
                    boots[name].append(http(ns, cmd, cwd))
                return one

            measures = {f"hello {n}": hello_of(n) for n in uniks}
            measures |= {f"http {n}": http_of(n, [monitors[n], "--net:service=hvt0", str(elfs[n][1])], tmp)
                         for n in uniks}
            measures["unik run"] = http_of("unik run --no-snapshot",
                                           [UNIK, "run", "--no-snapshot", "--net", "service=hvt0"],
                                           elfs["head"][1].parents[2])
            alternate(measures, rounds)
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        load = [round(max(a, b), 2) for a, b in zip(load, load_average(), strict=True)]
    result: dict[str, Any] = {"head": head_revision(), "rounds": rounds, "load_average": load, "hello": {}, "http": {}}
    rows = []
    for name, runs in hellos.items():
        med = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
        result["hello"][name] = {**med, "guest_ms_min": min(r["guest_ms"] for r in runs)}
        rows.append((f"hello, {name}", f"{med['run_ms']} ms to exit, {med['guest_ms']} ms in the guest "
                                      f"(min {result['hello'][name]['guest_ms_min']}), {med['system_calls']:.0f} "
                                      f"system calls, {med['traps']:.0f} traps"))
    for name, got in boots.items():
        serving, first = (round(statistics.median(r[i] for r in got)) for i in (0, 1))
        result["http"][name] = {"serving_ms": serving, "first_response_ms": first}
        what = "unik-hvt, cold" if name in uniks else ""
        rows.append((f"http, {name} {what}".strip(), f"serving {serving} ms, first response {first} ms"))
    rows.append(("load average (max of start, end)", str(load)))
    table(rows)
    return result


def main() -> None:
    """Measure and write ``cold`` into results/hvt_cold.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", help="also measure the unikernels unik at this git revision builds")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("UNIK_BENCH_ROUNDS", "5")))
    args = parser.parse_args()
    print(merge("hvt_cold", "cold", measure(args.rounds, args.baseline)))


if __name__ == "__main__":
    main()
