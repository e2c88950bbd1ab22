"""``unik doctor -t hvt``: whether this host builds hvt unikernels and its KVM runs them.

Required: an x86_64 host, the monitor and the guest runtime this distribution builds,
``/dev/kvm`` (read-write), and a KVM that runs the probe guest (``hvt/probe.S``: SSE,
x87, a system call through LSTAR and back, ten million loop iterations, the exit
hypercall) natively: where KVM emulates the guest instruction by instruction the probe
takes seconds instead of milliseconds and CPython would not start in useful time.
Building needs gcc, the static glibc and Debian's static CPython.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

from unik.target import Check

from .hvt_target import MONITOR, build_missing
from .hvtfs import RUNTIME

PROBE = Path(__file__).with_name("hvt") / "probe.elf"
#: The probe's loop takes about 10 ms natively; emulated, seconds.
NATIVE_SECONDS = 1.0


def probe() -> tuple[bool, str]:
    """Run the probe guest; (it ran natively, what happened)."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as exc:
        return False, f"/dev/kvm: {exc.strerror}"
    start = time.monotonic()
    try:
        proc = subprocess.run([str(MONITOR), "--mem", "16", str(PROBE)], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False, "the probe guest did not finish in 30 s: this KVM emulates the guest"
    except OSError as exc:
        return False, f"the monitor did not start: {exc}"
    elapsed = time.monotonic() - start
    if proc.returncode != 42:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])
        return False, f"the probe guest failed: {' / '.join(last[:3])}"
    if elapsed > NATIVE_SECONDS:
        return False, f"the probe guest took {elapsed:.1f} s: this KVM emulates the guest instead of running it"
    return True, f"the probe guest ran natively in {elapsed * 1000:.0f} ms (SSE, x87, syscall, exit)"


def doctor_checks() -> list[Check]:
    """The hvt target's host checks."""
    machine = platform.machine()
    why_build = build_missing()
    native, what = probe() if MONITOR.exists() and PROBE.exists() else (False, "the monitor or the probe is missing")
    return [
        Check("x86_64 host", machine == "x86_64", machine, fix="run hvt on an x86_64 host"),
        Check("the monitor unik-hvt and the guest runtime", MONITOR.exists() and RUNTIME.exists(),
              str(MONITOR) if MONITOR.exists() else "missing", fix="reinstall unik-target-solo5 (with gcc installed)"),
        Check("a KVM that runs 64-bit guests natively (probe guest)", native, what,
              fix="load kvm_intel or kvm_amd (or enable nested virtualisation) and let this user open /dev/kvm"),
        Check("gcc, the static glibc and Debian's static CPython 3.11 (unik build -t hvt)", why_build is None,
              why_build or "present", fix="apt-get install gcc libc6-dev libpython3.11-dev libexpat1-dev zlib1g-dev"),
    ]
