"""The emitted kernel and initramfs boot through QEMU's PVH loader (TCG): `unik run -t xen --emulate`."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from host_tools import needs
from served_support import curl_while_starting, serving
from vm_support import RUN_TIMEOUT_S, UNIK, unik

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
    assert "without its disk front-end: block devices storage need a Xen control domain" in proc.stderr


def test_emulation_wants_the_nic_on_the_user_network(http_xen: Path) -> None:
    proc = unik("run", "--emulate", cwd=http_xen, check=False)  # configured on bridge br7
    assert proc.returncode == 1
    assert "put network device service on QEMU's user network (--net service=user, no root)" in proc.stderr
    proc = unik("run", "--net", "service=user", cwd=http_xen, check=False)
    assert proc.returncode == 1 and "QEMU's user network exists only with --emulate" in proc.stderr


@needs("curl")
def test_examples_http_answers_through_a_published_port(http_xen: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [UNIK, "run", "--emulate", "--net", "service=user", "--publish", f"127.0.0.1:{port}:8080"]
    with serving(cmd, http_xen, RUN_TIMEOUT_S, prefix="serving on") as (_guest, console):
        assert console[-1] == "serving on 10.0.2.15:8080\n" and any("through QEMU's PVH entry" in c for c in console)
        page = curl_while_starting(f"http://127.0.0.1:{port}/")  # the first connection may race the listener
        assert "<h1>Hello from unik</h1>" in page.stdout, page.stderr + "".join(console)
