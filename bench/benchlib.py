"""Shared helpers of the benchmarks: timing, machine facts, the results file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


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


def write(name: str, unik: Mapping[str, float], peers: Mapping[str, Mapping[str, float]],
          ratios: Mapping[str, float], accelerator: str | None = None) -> Path:
    """Write ``results/<name>.json`` in the shape DESIGN.md gives, and print it."""
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
