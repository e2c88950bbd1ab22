"""The DNS fuzz target (fuzz_dns.py), briefly: atheris for ~10 s, and hypothesis.

``make fuzz`` runs the atheris target for longer (FUZZ_SECONDS).
"""

from __future__ import annotations

from pathlib import Path

import fuzz_dns
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcpip_support import atheris_briefly, executed_units

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
    status, stderr = atheris_briefly(HERE / "fuzz_dns.py", tmp_path, seconds=10, max_len=1500)
    assert status == 0, stderr[-4000:]
    assert executed_units(stderr) > 1000, stderr[-2000:]


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
