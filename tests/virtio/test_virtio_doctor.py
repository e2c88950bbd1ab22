"""``unik doctor -t virtio``: QEMU, the kernel's tools, the init, KVM or TCG, and the networks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from unik.cli import main
from unik_virtio import doctor
from unik_vmimage import qemu


def test_without_qemu_on_path_doctor_names_it_and_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # A host where nothing is installed: PATH holds no tool at all.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("UNIK_QEMU", raising=False)
    assert main(["doctor", "-t", "virtio"]) == 1
    out = capfd.readouterr().out
    assert "  [missing] qemu-system-x86_64 (boots the images): not found\n" \
           "           -> apt-get install qemu-system-x86 (or set UNIK_QEMU to a QEMU binary)\n" in out
    assert "  [missing] apt-get (the debian kernel provider fetches the guest kernel): not found\n" \
           "           -> apt-get install apt, or build with --kernel PATH\n" in out
    assert "  [warning] zstd (the initramfs compression; without it gzip, slower to unpack): not found\n" \
           "           -> apt-get install zstd\n" in out
    assert "[warning] QEMU's user network (--net DEVICE=user: no root, no TAP): QEMU is missing" in out


def test_unik_qemu_names_the_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIK_QEMU", str(tmp_path / "my-qemu"))
    check, found = doctor._qemu()
    assert not check.ok and found is None
    assert check.name == f"{tmp_path / 'my-qemu'} (boots the images; from UNIK_QEMU)"


def test_kvm_absent_says_tcg_will_be_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "kvm_usable", lambda: "there is no /dev/kvm")
    check = doctor.kvm_check("/usr/bin/qemu-system-x86_64")
    assert (check.ok, check.required) == (False, False)
    assert check.detail == "there is no /dev/kvm: TCG will be used" and "docker run --device /dev/kvm" in check.fix


def test_kvm_that_does_not_boot_a_guest_says_tcg_will_be_used(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    kernel = tmp_path / "k" / "vmlinuz"
    kernel.parent.mkdir()
    kernel.write_bytes(b"x")
    monkeypatch.setattr(qemu, "kvm_usable", lambda: None)
    monkeypatch.setattr(doctor, "cached_kernel", lambda: kernel)
    monkeypatch.setattr(qemu, "probe_kvm", lambda k: (False, "QEMU died of signal 6 booting a guest with KVM"))
    check = doctor.kvm_check("/usr/bin/qemu-system-x86_64")
    assert not check.ok and check.detail == ("/dev/kvm is there but a guest did not boot with it (QEMU died of "
                                             "signal 6 booting a guest with KVM): TCG will be used")
    monkeypatch.setattr(qemu, "probe_kvm", lambda k: (True, ""))
    assert doctor.kvm_check("/usr/bin/qemu-system-x86_64").detail == "a guest booted with KVM (k)"


def test_the_real_host_answers_kvm_with_the_run_time_probe(capfd: pytest.CaptureFixture[str]) -> None:
    # The probe's answer is the one `unik run` uses (cached per QEMU, kernel and boot).
    if qemu.kvm_usable() is not None or doctor.cached_kernel() is None:
        pytest.skip("no usable /dev/kvm or no Debian kernel fetched yet: the probe is not reached here")
    ok, _ = qemu.probe_kvm(doctor.cached_kernel())  # type: ignore[arg-type]
    main(["doctor", "-t", "virtio"])
    out = capfd.readouterr().out
    line = next(x for x in out.splitlines() if "KVM (else TCG" in x)
    assert ("[ok]" in line and "a guest booted with KVM" in line) if ok else \
        ("[warning]" in line and "TCG will be used" in line), line
    assert os.path.exists("/dev/kvm")
