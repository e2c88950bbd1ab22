"""Boot built images under QEMU (TCG, so that no test depends on KVM)."""

from __future__ import annotations

from pathlib import Path

import pytest
from vm_support import unik

pytestmark = pytest.mark.slow


def test_hello_boots_and_prints_four_lines(hello_app: Path) -> None:
    proc = unik("run", "--accel", "tcg", "--mem", "192M", cwd=hello_app)
    lines = proc.stdout.splitlines()
    assert [line for line in lines if line == "hello"] == ["hello"] * 4
    assert lines[-4:] == ["hello"] * 4, proc.stdout  # the application's lines come last
    assert proc.returncode == 0
    assert "TCG" in proc.stderr and "192M" in proc.stderr  # the runner says what it booted


def test_exit_status_of_the_application_becomes_unik_runs(status_app: Path) -> None:
    proc = unik("run", "--accel", "tcg", "--status", "200", cwd=status_app, check=False)
    assert "entropy virtio-rng+rdrand 16" in proc.stdout, proc.stdout + proc.stderr  # module loaded, /dev/hwrng
    assert proc.returncode == 200, proc.stdout + proc.stderr


def test_a_crashing_application_gives_status_1_and_its_traceback(status_app: Path) -> None:
    proc = unik("run", "--accel", "tcg", "--crash", "true", cwd=status_app, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "RuntimeError: deliberate failure" in proc.stdout  # the console carries stderr too
    assert "Traceback (most recent call last)" in proc.stdout
    # The frames name the files the image was built from (relative to the project's directory: the
    # image does not carry where it was built), with the lines the guest ran.
    assert 'File "src/status_app/__init__.py", line 10, in start\n    raise RuntimeError("deliberate failure")' \
        in proc.stdout
    assert '"/app/' not in proc.stdout


def test_sectors_written_survive_a_reboot(disk_app: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * (1 << 20))
    wrote = unik("run", "--accel", "tcg", "--block", f"storage={disk}", "--phase", "write", cwd=disk_app)
    assert "disk 2048 sectors of 512 bytes" in wrote.stdout and "wrote" in wrote.stdout
    assert disk.read_bytes()[5 * 512:7 * 512] == bytes(range(256)) * 4  # on the host's file
    read = unik("run", "--accel", "tcg", "--block", f"storage={disk}", "--phase", "read", cwd=disk_app)
    assert "match" in read.stdout.splitlines()


def test_a_block_device_without_a_disk_is_refused_before_booting(disk_app: Path) -> None:
    proc = unik("run", "--accel", "tcg", cwd=disk_app, check=False)
    assert proc.returncode != 0
    assert "unik run --block storage=FILE" in proc.stderr


def test_microvm_under_tcg_with_virtio_mmio(status_app: Path) -> None:
    proc = unik("run", "--accel", "tcg", "--machine", "microvm", "--status", "7", cwd=status_app, check=False)
    assert "entropy virtio-rng+rdrand 16" in proc.stdout, proc.stdout + proc.stderr  # virtio-rng over virtio-mmio
    assert proc.returncode == 7
    assert "microvm, TCG" in proc.stderr
