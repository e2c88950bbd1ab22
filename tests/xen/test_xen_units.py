"""The xen target's pieces without building or booting: xl syntax, disks, ELF notes, checks, the xl runner."""

from __future__ import annotations

import io
import os
import struct
import time
from pathlib import Path

import pytest
from unik.errors import BuildError, RunError
from unik_xen.elfnotes import XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_PHYS32_ENTRY, guest_types, pvh_entry, xen_notes
from unik_xen.target import control_domain, doctor_checks, xl_boot
from unik_xen.xlconfig import Disk, DomainConfig, Vif, mem_mib, vdev


def test_virtual_disk_names_follow_xens_scheme() -> None:
    assert [vdev(i) for i in (0, 1, 25, 26, 27, 701)] == ["xvda", "xvdb", "xvdz", "xvdaa", "xvdab", "xvdzz"]


def test_memory_sizes_in_mib() -> None:
    assert (mem_mib("256M"), mem_mib("1G"), mem_mib("512"), mem_mib("131072K")) == (256, 1024, 512, 128)  # MiB
    with pytest.raises(BuildError, match="needs at least 80 MiB for its kernel"):
        mem_mib("16M")
    with pytest.raises(BuildError, match="not a memory size"):
        mem_mib("lots")


def test_config_text_carries_every_setting_and_refuses_what_xl_cannot_read() -> None:
    config = DomainConfig("app", "pv", "vmlinux", "initramfs.cpio.zst", 128, "console=hvc0 -- --port 80", vcpus=2,
                          vifs=[Vif("52:54:00:aa:bb:cc", "br1")], disks=[Disk("xvda", "/d/a,b.img", read_only=True)],
                          on_crash="preserve", tsc_mode="native")
    text = config.text()
    assert 'type = "pv"' in text and "memory = 128" in text and "vcpus = 2" in text
    assert 'vif = [ "mac=52:54:00:aa:bb:cc,bridge=br1,type=vif" ]' in text
    assert ('disk = [ "format=raw,vdev=xvda,access=ro,backendtype=phy,script=block,target=/d/a,b.img" ]'
            in text)  # target= last: commas allowed
    assert 'on_crash = "preserve"' in text and 'tsc_mode = "native"' in text
    assert "tsc_mode" not in DomainConfig("a", "pvh", "k", "r", 64, "c", tsc_mode="default").text()
    quoted = DomainConfig("a", "pvh", "k", "r", 64, 'say "hi there" c:\\x').text()
    assert 'cmdline = "say \\"hi there\\" c:\\\\x"' in quoted
    with pytest.raises(BuildError, match="xl string"):
        DomainConfig("a", "pvh", "k", "r", 64, "two\nlines").text()
    with pytest.raises(BuildError, match="not a MAC"):
        Vif("52:54:00:aa:bb", "br1").spec()


def test_config_records_check_their_values_when_made() -> None:
    with pytest.raises(BuildError, match="not a MAC"):
        Vif("52:54:00:aa:bb", "br1")  # refused when made, not when written
    with pytest.raises(BuildError, match="not a MAC address and an interface name"):
        Vif("52:54:00:aa:bb:cc", "a bridge with spaces")
    with pytest.raises(BuildError, match="not a Xen virtual disk name"):
        Disk("sda", "/d/a.img")
    with pytest.raises(BuildError, match="no target file"):
        Disk("xvda", "")
    with pytest.raises(BuildError, match="pvh or pv"):
        DomainConfig("a", "hvm", "k", "r", 64, "c")
    with pytest.raises(BuildError, match="on_crash 'reboot'"):
        DomainConfig("a", "pvh", "k", "r", 64, "c", on_crash="reboot")
    with pytest.raises(BuildError, match="tsc_mode 'fast'"):
        DomainConfig("a", "pvh", "k", "r", 64, "c", tsc_mode="fast")
    with pytest.raises(BuildError, match="0 vCPUs"):
        DomainConfig("a", "pvh", "k", "r", 64, "c", vcpus=0)
    with pytest.raises(TypeError):
        DomainConfig("a", "pvh", "k", "r", 64, "c", maxmem=128)  # type: ignore[call-arg]  # no such setting


def _elf_with_notes(notes: list[tuple[bytes, int, bytes]]) -> bytes:
    """A minimal ELF64 with one PT_NOTE segment holding ``notes`` (name, type, descriptor)."""
    body = b""
    for name, ntype, desc in notes:
        n = name + b"\0"
        body += struct.pack("<III", len(n), len(desc), ntype) + n.ljust((len(n) + 3) & ~3, b"\0")
        body += desc.ljust((len(desc) + 3) & ~3, b"\0")
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)  # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(body), len(body), 4)
    return bytes(header) + phdr + body


def test_elf_notes_tell_pvh_from_pv(tmp_path: Path) -> None:
    both = _elf_with_notes([(b"GNU", 3, b"x" * 20), (b"Xen", XEN_ELFNOTE_ENTRY, b"\0" * 8),
                            (b"Xen", XEN_ELFNOTE_PHYS32_ENTRY, struct.pack("<I", 0x1000850))])
    (tmp_path / "both").write_bytes(both)
    assert guest_types(tmp_path / "both") == ["pvh", "pv"]
    assert pvh_entry(tmp_path / "both") == 0x1000850
    (tmp_path / "pv").write_bytes(_elf_with_notes([(b"Xen", XEN_ELFNOTE_ENTRY, b"\0" * 8)]))
    assert guest_types(tmp_path / "pv") == ["pv"] and pvh_entry(tmp_path / "pv") is None
    assert xen_notes(_elf_with_notes([(b"GNU", XEN_ELFNOTE_PHYS32_ENTRY, b"1234")])) == {}  # not Xen's
    with pytest.raises(BuildError, match="ELF64"):
        xen_notes(b"MZ" + b"\0" * 100)


def test_control_domain_detection(tmp_path: Path) -> None:
    caps = tmp_path / "capabilities"
    assert "not running under Xen" in str(control_domain(caps))
    caps.write_text("")
    assert "a Xen guest, not the control domain" in str(control_domain(caps))
    caps.write_text("control_d\n")
    assert control_domain(caps) is None


def test_doctor_names_what_is_missing_on_a_bare_host(tmp_path: Path) -> None:
    checks = {c.name.split(" (")[0]: c for c in doctor_checks(tmp_path)}
    dom0 = checks["Xen control domain"]
    assert not dom0.ok and dom0.required and "xen-system-amd64" in dom0.fix
    assert not checks["hypercall device /dev/xen/privcmd"].ok
    bridge = checks["bridge xenbr0"]
    assert not bridge.ok and not bridge.required and "ip link add xenbr0 type bridge" in bridge.fix
    (tmp_path / "proc/xen").mkdir(parents=True)
    (tmp_path / "proc/xen/capabilities").write_text("control_d\n")
    (tmp_path / "sys/class/net/xenbr0/bridge").mkdir(parents=True)
    checks = {c.name.split(" (")[0]: c for c in doctor_checks(tmp_path)}
    assert checks["Xen control domain"].ok and checks["bridge xenbr0"].ok



def _fake_xl(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "xl"
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\n{body}\n")
    script.chmod(0o755)
    return [str(script), "create", "-c", "app.xl"]


def test_xl_runner_takes_the_status_from_the_console(tmp_path: Path) -> None:
    console = io.BytesIO()
    outcome = xl_boot(_fake_xl(tmp_path, "echo hello; echo 'unik-init: exit status 3'; exit 0"),
                      boot_timeout=30, console=console, on_timeout=lambda: None)
    assert outcome.status == 3 and outcome.returncode == 0 and b"hello\n" in console.getvalue()
    # xl's own status says nothing about the guest: a crash ends with xl exiting 0 and no status line.
    crashed = xl_boot(_fake_xl(tmp_path, "echo 'Kernel panic'; exit 0"), boot_timeout=30, console=None,
                      on_timeout=lambda: None)
    assert crashed.status is None and crashed.returncode == 0


def test_a_silent_xen_guest_is_destroyed_with_a_clear_error(tmp_path: Path) -> None:
    destroyed: list[bool] = []
    start = time.monotonic()
    with pytest.raises(RunError, match="printed nothing on its console within 1 s; it is destroyed"):
        xl_boot(_fake_xl(tmp_path, "exec sleep 60"), boot_timeout=1.0, console=None,
                on_timeout=lambda: destroyed.append(True))
    assert destroyed == [True] and time.monotonic() - start < 30
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_codecs_named_by_literals_go_into_the_image(tmp_path: Path) -> None:
    # unik-lib-fat's long names use .encode("utf-16-le"): the codec registry imports
    # encodings.utf_16_le at run time, which no import statement names (found on Xen: FAT on xvd).
    import sysconfig

    from unik_vmimage.imports import find_modules

    script = tmp_path / "main.py"
    script.write_text('def f(name):\n    return name.encode("utf-16-le"), b"".decode("Latin-1"), "x".encode("nope")\n')
    found = find_modules(script, [tmp_path, Path(sysconfig.get_paths()["stdlib"])])
    assert {"encodings.utf_16_le", "encodings.latin_1"} <= set(found.modules)
