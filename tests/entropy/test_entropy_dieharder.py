"""A dieharder subset on a live pipe from `unik random -n 0` (slow: run with -m slow)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from host_tools import needs

TESTS = ["0", "1", "2"]  # diehard birthdays, OPERM5, 32x32 binary rank


@pytest.mark.slow
@needs("dieharder")
@pytest.mark.parametrize("test", TESTS)
def test_dieharder_subset(test: str) -> None:
    unik = subprocess.Popen([sys.executable, "-m", "unik.cli", "random", "-n", "0"], stdout=subprocess.PIPE)
    try:
        res = subprocess.run(["dieharder", "-g", "200", "-d", test], stdin=unik.stdout,
                             capture_output=True, text=True, timeout=240)
    finally:
        unik.kill()
        unik.wait(timeout=10)
    verdicts = [line.rsplit("|", 1)[-1].strip() for line in res.stdout.splitlines() if line.count("|") >= 5]
    assert verdicts and "FAILED" not in verdicts, res.stdout
