"""The fuzz targets, briefly: their seeds, atheris for ~10-12 s each, and hypothesis.

fuzz_frames.py (IPv4 frames and the stack's input path), fuzz_ipv6.py (IPv6 and its
input path) and fuzz_dns.py (the DNS codec; its hypothesis test is test_dns_fuzz.py's).
``make fuzz`` runs the atheris targets for longer (FUZZ_SECONDS, 10 minutes by default).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import fuzz_dns
import fuzz_frames
import fuzz_ipv6
import pytest
from fuzz_support import atheris_missing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcpip_support import atheris_briefly, executed_units

HERE = Path(__file__).parent
FRAME_TARGETS = [pytest.param(fuzz_frames, id="frames"), pytest.param(fuzz_ipv6, id="ipv6")]


@pytest.mark.parametrize("target", [*FRAME_TARGETS, pytest.param(fuzz_dns, id="dns")])
def test_seeds_pass_the_target(target: ModuleType) -> None:
    for data in target.seeds().values():
        target.one_input(data)


@pytest.mark.skipif(atheris_missing() is not None, reason=str(atheris_missing()))
@pytest.mark.parametrize(("script", "seconds", "max_len", "units"), [
    pytest.param("fuzz_frames.py", 12, 2048, 1000, id="frames"),
    pytest.param("fuzz_ipv6.py", 12, 2048, 500, id="ipv6"),
    pytest.param("fuzz_dns.py", 10, 1500, 1000, id="dns"),
])
def test_atheris_briefly(tmp_path: Path, script: str, seconds: int, max_len: int, units: int) -> None:
    """Coverage-guided fuzzing for a bounded time; a crash fails with libFuzzer's report."""
    status, stderr = atheris_briefly(HERE / script, tmp_path, seconds=seconds, max_len=max_len)
    assert status == 0, stderr[-4000:]
    assert executed_units(stderr) > units, stderr[-2000:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=200)), max_size=6))
@pytest.mark.parametrize("target", FRAME_TARGETS)
def test_hypothesis_frames(target: ModuleType, parts: list[tuple[int, bytes]]) -> None:
    """The same target driven by hypothesis (runs where atheris has no wheel too)."""
    data = b"".join(bytes((kind, (len(body) + 7) // 8)) + body.ljust((len(body) + 7) // 8 * 8, b"\0")
                    for kind, body in parts)
    target.one_input(data)
