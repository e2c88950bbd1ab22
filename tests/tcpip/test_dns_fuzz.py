"""The DNS fuzz target (fuzz_dns.py), briefly: atheris for ~10 s, and hypothesis.

``make fuzz`` runs the atheris target for longer (FUZZ_SECONDS).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import fuzz_dns
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).parent

try:
    import atheris  # noqa: F401
except ImportError:
    ATHERIS: str | None = "needs atheris (pip install atheris: wheels for CPython <= 3.11 on x86_64)"
else:
    ATHERIS = None


def test_dns_seeds_pass_the_target() -> None:
    for data in fuzz_dns.seeds().values():
        fuzz_dns.one_input(data)


@pytest.mark.skipif(ATHERIS is not None, reason=str(ATHERIS))
def test_dns_atheris_briefly(tmp_path: Path) -> None:
    """Coverage-guided fuzzing for a bounded time; a crash fails with libFuzzer's report."""
    corpus = tmp_path / "corpus"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    rss_limit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 1024  # see test_fuzz.py
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz_dns.py"), "--seed", str(corpus), str(corpus), "-max_total_time=10",
         "-max_len=1500", "-timeout=10", f"-rss_limit_mb={rss_limit}", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = [line for line in proc.stderr.splitlines() if "stat::number_of_executed_units" in line]
    assert runs and int(runs[0].split(":")[-1]) > 1000, proc.stderr[-2000:]


def _mutations() -> st.SearchStrategy[bytes]:
    seeds = list(fuzz_dns.seeds().values())

    def mutate(args: tuple[int, list[tuple[int, int]], bytes]) -> bytes:
        index, edits, tail = args
        data = bytearray(seeds[index % len(seeds)])
        for at, value in edits:
            if data:
                data[at % len(data)] = value
        return bytes(data) + tail

    return st.tuples(st.integers(0, 100), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)),
                                                   max_size=6), st.binary(max_size=8)).map(mutate)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), _mutations()))
def test_dns_hypothesis(data: bytes) -> None:
    """The same target driven by hypothesis (runs where atheris has no wheel too)."""
    fuzz_dns.one_input(data)
