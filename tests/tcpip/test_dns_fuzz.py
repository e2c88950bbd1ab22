"""The DNS fuzz target (fuzz_dns.py) driven by hypothesis, from mutated seeds.

Its seeds and atheris for ~10 s are test_fuzz.py's; ``make fuzz`` runs atheris for longer.
"""

from __future__ import annotations

import fuzz_dns
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


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
