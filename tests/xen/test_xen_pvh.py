"""The emitted kernel and initramfs boot through QEMU's PVH loader (TCG): `unik run -t xen --emulate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from xen_support import unik

pytestmark = pytest.mark.slow


def _qemus_booting(directory: Path) -> list[int]:
    """QEMU processes whose command line names a file of ``directory``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in text and str(directory) in text:
            found.append(int(cmdline.parent.name))
    return found


def test_hello_boots_through_the_pvh_entry(hello_xen: Path) -> None:
    proc = unik("run", "--emulate", "--boot-timeout", "150", cwd=hello_xen)
    lines = proc.stdout.splitlines()
    assert lines[-4:] == ["hello"] * 4, proc.stdout + proc.stderr
    assert proc.returncode == 0
    assert "through QEMU's PVH entry" in proc.stderr


def test_exit_status_travels_out(status_xen: Path) -> None:
    proc = unik("run", "--emulate", "--boot-timeout", "150", "--status", "9", cwd=status_xen, check=False)
    assert "status app exiting with 9" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 9


def test_a_silent_guest_fails_clearly(hello_xen: Path) -> None:
    proc = unik("run", "--emulate", "--boot-timeout", "0.2", cwd=hello_xen, check=False)
    assert proc.returncode == 1
    assert "printed nothing on its console within 0.2 s" in proc.stderr
    assert _qemus_booting(hello_xen / "dist" / "hello-xen") == []  # unik run stopped its QEMU


def test_emulation_refuses_xen_devices(devices_xen: Path) -> None:
    proc = unik("run", "--emulate", cwd=devices_xen, check=False)
    assert proc.returncode == 1
    assert "devices storage, uplink need a Xen control domain" in proc.stderr or \
        "devices uplink, storage need a Xen control domain" in proc.stderr
