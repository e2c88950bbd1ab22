"""The IPv6 fuzz target (fuzz_ipv6.py), briefly: its seeds, atheris for ~12 s, and hypothesis.

``make fuzz`` runs the atheris target for longer (FUZZ_SECONDS, 10 minutes by default).
"""

from __future__ import annotations

from pathlib import Path

import fuzz_ipv6
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


def test_ipv6_seeds_pass_the_target() -> None:
    for data in fuzz_ipv6.seeds().values():
        fuzz_ipv6.one_input(data)


@pytest.mark.skipif(ATHERIS is not None, reason=str(ATHERIS))
def test_ipv6_atheris_briefly(tmp_path: Path) -> None:
    """Coverage-guided fuzzing for a bounded time; a crash fails with libFuzzer's report."""
    status, stderr = atheris_briefly(HERE / "fuzz_ipv6.py", tmp_path, seconds=12, max_len=2048)
    assert status == 0, stderr[-4000:]
    assert executed_units(stderr) > 500, stderr[-2000:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=200)), max_size=6))
def test_ipv6_hypothesis_frames(parts: list[tuple[int, bytes]]) -> None:
    """The same target driven by hypothesis (runs where atheris has no wheel too)."""
    data = b"".join(bytes((kind, (len(body) + 7) // 8)) + body.ljust((len(body) + 7) // 8 * 8, b"\0")
                    for kind, body in parts)
    fuzz_ipv6.one_input(data)
