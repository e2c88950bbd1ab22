"""unik-hvt's snapshots of a guest program: --save-snapshot at its snapshot point, --snapshot to restore it."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from hvt_support import GUEST_DIR, needs_kvm, run
from unik_solo5.hvtfs import link


def _guest(tmp: Path, name: str, *defines: str) -> Path:
    """guest/snapshot.c linked with the runtime and the static glibc (``defines``: -DWRITE_TEXT, -DOVERFLOW)."""
    obj = tmp / f"{name}.o"
    subprocess.run(["gcc", "-O1", *defines, "-c", str(GUEST_DIR / "snapshot.c"), "-o", str(obj)], check=True)
    link([obj], None, tmp / name)
    return tmp / name


def _fields(line: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in line.split())


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The guest and its snapshot, saved at --mem 64."""
    needs_kvm()
    tmp = tmp_path_factory.mktemp("snap")
    elf = _guest(tmp, "snapshot")
    proc = run("--mem", "64", "--save-snapshot", tmp / "snapshot.snap", elf)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr
    return elf, tmp / "snapshot.snap"


def test_two_restores_draw_fresh_randomness_and_keep_the_clocks(saved: tuple[Path, Path]) -> None:
    elf, snap = saved
    runs = []
    for _ in range(2):
        proc = run("--mem", "64", "--snapshot", snap, elf)
        assert proc.returncode == 7 and proc.stderr == "", proc.stderr
        runs.append(_fields(proc.stdout))
    first, second = runs
    assert first["restored"] == second["restored"] == "1"
    # drawn before the snapshot point: the snapshot's, in every restore; after it: each run's own
    assert first["before"] == second["before"]
    assert len({first["after"], second["after"], first["before"]}) == 3
    assert first["monotonic_forward"] == second["monotonic_forward"] == "1"
    assert abs(int(second["wall"]) - time.time()) < 30  # the host's time, not the snapshot's


def test_a_cold_boot_passes_the_snapshot_point(saved: tuple[Path, Path]) -> None:
    elf, _ = saved
    proc = run("--mem", "64", elf)
    assert proc.returncode == 7 and _fields(proc.stdout)["restored"] == "0", proc.stdout + proc.stderr


def test_a_snapshot_that_does_not_match_boots_cold_saying_why(saved: tuple[Path, Path], tmp_path: Path) -> None:
    elf, snap = saved
    data = snap.read_bytes()
    damaged, cut, other = tmp_path / "damaged.snap", tmp_path / "cut.snap", tmp_path / "other.snap"
    damaged.write_bytes(data[:-100] + bytes([data[-100] ^ 1]) + data[-99:])
    cut.write_bytes(data[:-4096])
    other.write_bytes(b"not a snapshot" * 100)
    cases = [
        (("--mem", "64", "--snapshot", damaged), "is damaged (its checksum does not match its contents)"),
        (("--mem", "64", "--snapshot", cut), "is damaged (its size does not match its header)"),
        (("--mem", "64", "--snapshot", other), "is not an hvt snapshot (or is cut short)"),
        (("--mem", "64", "--snapshot", tmp_path / "absent.snap"), "does not exist"),
        (("--mem", "48", "--snapshot", snap), "was made with --mem 64, this run has --mem 48 (a snapshot restores "
         "only into as much memory as it was made with or more: unik configure --mem 48M and unik build make one "
         "for it)"),
    ]
    for args, why in cases:
        proc = run(*args, elf)
        assert proc.returncode == 7 and _fields(proc.stdout)["restored"] == "0", proc.stdout + proc.stderr
        assert proc.stderr.splitlines() == [f"unik-hvt: the snapshot {args[-1]} {why}: booting cold"], proc.stderr
    # another ELF (the same source compiled otherwise: another build ID) refuses this one's snapshot
    rebuilt = _guest(tmp_path, "rebuilt", "-O2")
    proc = run("--mem", "64", "--snapshot", snap, rebuilt)
    assert "is of another build of the unikernel (its build ID or size differs): booting cold" in proc.stderr
    assert proc.returncode == 7


@pytest.mark.parametrize(("define", "message"), [
    ("-DWRITE_TEXT", r"the guest wrote to 0x[0-9a-f]+, in its read-only text \(W\^X\)"),
    ("-DOVERFLOW", r"the guest's stack overflowed: cr2 0x37ff[0-9a-f]{3} is in the guard page 0x37ff000"),
])
@pytest.mark.parametrize("mem", ["64", "96"])
def test_w_x_and_the_guard_page_hold_after_a_restore(tmp_path: Path, define: str, message: str, mem: str) -> None:
    """Also restored into more memory than the snapshot's: its stack, and the guard page, stay where they were."""
    needs_kvm()
    elf = _guest(tmp_path, "fault", define)
    assert run("--mem", "64", "--save-snapshot", tmp_path / "fault.snap", elf).returncode == 0
    proc = run("--mem", mem, "--snapshot", tmp_path / "fault.snap", elf)
    assert "booting cold" not in proc.stderr
    assert proc.returncode == 255 and re.search(message, proc.stderr), proc.stderr


def test_a_snapshot_restores_into_more_memory(saved: tuple[Path, Path]) -> None:
    elf, snap = saved
    proc = run("--mem", "96", "--snapshot", snap, elf)
    assert proc.returncode == 7 and proc.stderr == "", proc.stderr
    assert _fields(proc.stdout)["restored"] == "1"


def test_the_manifest_holds_after_a_restore(saved: tuple[Path, Path]) -> None:
    elf, snap = saved
    proc = run("--mem", "64", "--snapshot", snap, "--block:storage=/etc/hostname", elf)
    assert proc.returncode == 125 and "block device storage is not in" in proc.stderr, proc.stderr


def test_saving_refuses_devices_and_a_guest_that_never_reaches_the_point(tmp_path: Path) -> None:
    needs_kvm()
    elf = _guest(tmp_path, "snapshot")
    proc = run("--save-snapshot", tmp_path / "x.snap", "--block:storage=/etc/hostname", elf)
    assert proc.returncode == 125 and "give it no device" in proc.stderr
    src = tmp_path / "plain.c"
    src.write_text("int main(void) { return 3; }\n")
    subprocess.run(["gcc", "-c", str(src), "-o", str(tmp_path / "plain.o")], check=True)
    link([tmp_path / "plain.o"], None, tmp_path / "plain")
    proc = run("--save-snapshot", tmp_path / "plain.snap", tmp_path / "plain")
    assert proc.returncode == 125
    assert "the guest exited (status 3) before its snapshot point" in proc.stderr, proc.stderr


@pytest.mark.parametrize(("status", "stderr", "kvm"), [
    (255, "unik-hvt: the guest stopped on a KVM internal error", True),
    (125, "unik-hvt: KVM_CREATE_VM: Cannot allocate memory", True),
    (120, "ModuleNotFoundError: No module named 'missing'", False),
])
def test_a_failed_pre_initialisation_blames_kvm_or_the_application(tmp_path: Path, status: int, stderr: str,
                                                                     kvm: bool) -> None:
    from unik.errors import BuildError
    from unik_solo5 import hvt_snapshot

    monitor = tmp_path / "fake-monitor"
    monitor.write_text(f"#!/bin/sh\necho \"{stderr}\" >&2\nexit {status}\n")
    monitor.chmod(0o755)
    elf = tmp_path / "app.hvt"
    elf.write_bytes(b"\x7fELF")
    expected = hvt_snapshot.NotPreinitialised if kvm else BuildError
    with pytest.raises(expected) as caught:
        hvt_snapshot.save(monitor, elf)
    assert stderr in str(caught.value)
    assert not list(tmp_path.glob("app.snap*"))  # nothing partial is left
