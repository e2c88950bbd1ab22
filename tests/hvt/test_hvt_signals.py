"""Signals in the hvt guest: SIGTERM sent to unik-hvt reaches the program's handler (unik stop's path)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from hvt_support import GUEST_DIR, MONITOR, needs_kvm
from unik_solo5.hvtfs import link


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("signals")
    subprocess.run(["gcc", "-O2", "-c", str(GUEST_DIR / "signals.c"), "-o", str(tmp / "signals.o")], check=True)
    link([tmp / "signals.o"], None, tmp / "signals")
    return tmp / "signals"


def _stopped(program: Path, *args: str) -> tuple[int, str, str]:
    """Start the program, send unik-hvt SIGTERM once it is ready, and return its status and output."""
    proc = subprocess.Popen([str(MONITOR), "--mem", "64", str(program), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.5)  # the guest is in its 10 s sleep microseconds after "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_sigterm_reaches_the_guests_handler(program: Path) -> None:
    needs_kvm()
    status, out, err = _stopped(program)
    assert out.splitlines() == ["SIGTERM handled: 15, sleep interrupted: 1, x = 2.5", "blocked: 0",
                                "unblocked: 10"], err
    assert status == 7, err


def test_without_a_handler_sigterm_ends_the_guest_with_143(program: Path) -> None:
    needs_kvm()
    status, out, err = _stopped(program, "default")
    assert (status, out) == (143, ""), err
