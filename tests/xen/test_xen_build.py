"""`unik build -t xen`: the ELF kernel with its PVH note, the initramfs's modules, the xl configuration
as xl's own parser reads it, and the runner's and doctor's answers on a host that is not dom0."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import xen_nested as nested
from unik_vmimage.initramfs import read_initramfs
from unik_vmimage.keys import instance_mac
from unik_xen.elfnotes import guest_types, pvh_entry
from vm_support import unik
from xen_support import build, xl_parse

pytestmark = pytest.mark.slow


def _manifest(root: Path) -> dict:  # type: ignore[type-arg]
    artifact = next((root / "dist").glob("*-xen"))
    return json.loads((artifact / "artifact.json").read_text())["manifest"]  # type: ignore[no-any-return]


def test_hello_artifact_is_a_pvh_elf_with_no_xen_modules(hello_xen: Path) -> None:
    out = hello_xen / "dist" / "hello-xen"
    assert sorted(p.name for p in out.iterdir()) == ["artifact.json", "hello.xl", "initramfs.cpio.zst",
                                                     "vmlinux"]
    vmlinux = out / "vmlinux"
    assert vmlinux.read_bytes()[:4] == b"\x7fELF"
    assert "pvh" in guest_types(vmlinux) and (pvh_entry(vmlinux) or 0) > 0  # XEN_ELFNOTE_PHYS32_ENTRY
    manifest = _manifest(hello_xen)
    # hvc0 is built in; no NIC, no disk: only the ACPI power button, which --emulate's QEMU presses
    assert manifest["initramfs"]["kernel_modules"] == ["button"]
    assert manifest["xen_type"] == "pvh" and manifest["kernel"]["guest_types"][0] == "pvh"
    names = {e.name for e in read_initramfs(out / "initramfs.cpio.zst")}
    assert "app/unik/posix.py" in names  # the guest's code (the console); the builder and the target stay on the host
    assert not [n for n in names if n.startswith(("app/unik_vmimage/", "app/unik_xen/", "app/unik_virtio/"))]


def test_device_front_ends_go_into_the_image_and_the_config(devices_xen: Path) -> None:
    manifest = _manifest(devices_xen)
    modules = {Path(m).name.split(".")[0] for m in manifest["initramfs"]["kernel_modules"]}
    assert {"xen-netfront", "xen-blkfront"} <= modules
    # the NIC's virtio modules too, for `unik run --emulate --net uplink=user`; no disk or RNG ones
    assert {m for m in modules if "virtio" in m} == {"virtio", "virtio_ring", "virtio_pci", "virtio_mmio",
                                                     "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_net"}
    devices = {d["name"]: d for d in manifest["devices"]}
    assert devices["storage"]["vdev"] == "xvda" and devices["uplink"]["xl"] == "vif"
    entries = {e.name: e for e in read_initramfs(devices_xen / "dist" / "devices-xen" / "initramfs.cpio.zst")}
    assert json.loads(entries["unik/xen-disks.json"].data) == {"storage": "xvda"}


def test_xl_parses_the_config_and_it_matches_the_plan(devices_xen: Path, xen_host: nested.XenHost) -> None:
    config = devices_xen / "dist" / "devices-xen" / "devices.xl"
    parsed = xl_parse(config, xen_host.root / "usr/lib/x86_64-linux-gnu")
    assert parsed["returncode"] == 0 and parsed["readfile"] == 0, parsed
    manifest = _manifest(devices_xen)
    mac = instance_mac("devices", "uplink")  # the build's instance is named after the application
    assert parsed["name"] == "devices" and parsed["type"] == "pvh"
    assert parsed["kernel"] == "vmlinux" and parsed["ramdisk"] == "initramfs.cpio.zst"
    assert parsed["memory"] == 256 and parsed["vcpus"] == 1
    assert parsed["tsc_mode"] == "native" and parsed["on_crash"] == "destroy"
    assert parsed["cmdline"].startswith("console=hvc0") and "unik_exit=poweroff" in parsed["cmdline"]
    assert parsed["cmdline"].endswith(f" -- --net-mac uplink={mac}")  # the guest finds its NIC by it
    assert "mac" not in str(manifest["devices"])  # the image names no MAC: each instance has its own
    assert parsed["vif"] == [f"mac={mac},bridge=br7,type=vif"]  # --net uplink=br7
    disk = devices_xen / "disk.img"
    assert parsed["parsed_disks"] == [{"rc": 0, "target": str(disk), "vdev": "xvda"}]  # --block storage=FILE


def test_the_libvirt_domain_is_pvh_with_the_configs_devices(devices_xen: Path) -> None:
    from unik_vmimage.libvirt_xml import Domain

    out = devices_xen / "dist" / "devices-xen"
    domain = Domain.from_xml((out.parent / "devices-xen.libvirt.xml").read_text())  # only what unik writes
    assert domain.type == "xen" and domain.boot.kernel == str(out.resolve() / "vmlinux")
    mac = instance_mac("devices", "uplink")
    assert [(n.mac, n.type, n.source) for n in domain.interfaces] == [(mac, "bridge", "br7")]
    assert [(d.serial, d.target, d.source) for d in domain.disks] == [
        ("storage", "xvda", str(devices_xen / "disk.img"))]
    assert domain.boot.cmdline.endswith(f"unik_exit=poweroff ipv6.disable_ipv6=1 -- --net-mac uplink={mac}")
    if shutil.which("virt-xml-validate"):
        proc = subprocess.run(["virt-xml-validate", str(out.parent / "devices-xen.libvirt.xml"), "domain"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_xl_parser_rejects_a_broken_config(tmp_path: Path, xen_host: nested.XenHost) -> None:
    bad = tmp_path / "bad.xl"
    bad.write_text('name = "x"\nmemory = [ 1,\n')
    parsed = xl_parse(bad, xen_host.root / "usr/lib/x86_64-linux-gnu")
    assert parsed["returncode"] == 1 and parsed["readfile"] != 0, parsed  # the parser is real


def test_pv_on_request(status_xen: Path, xen_host: nested.XenHost, tmp_path: Path) -> None:
    unik("configure", "-t", "xen", "--xen-type", "pv", "--mem", "128M", "--on-crash", "preserve", cwd=status_xen)
    try:
        unik("build", cwd=status_xen)
        config = status_xen / "dist" / "status-xen" / "status.xl"
        parsed = xl_parse(config, xen_host.root / "usr/lib/x86_64-linux-gnu")
        assert (parsed["type"], parsed["memory"], parsed["on_crash"]) == ("pv", 128, "preserve")
        assert "pv" in guest_types(status_xen / "dist" / "status-xen" / "vmlinux")  # XEN_ELFNOTE_ENTRY
    finally:
        build(status_xen)  # back to the PVH default the other tests share


def test_run_outside_dom0_says_what_it_needs(hello_xen: Path) -> None:
    proc = unik("run", cwd=hello_xen, check=False)
    assert proc.returncode == 1
    assert "needs a Xen control domain" in proc.stderr and "--emulate" in proc.stderr


def test_doctor_on_this_host(hello_xen: Path) -> None:
    proc = unik("doctor", "-t", "xen", cwd=hello_xen, check=False)
    assert proc.returncode == 1  # not a Xen host
    assert "[missing] Xen control domain" in proc.stdout and "xen-system-amd64" in proc.stdout
    assert "[ok] qemu-system-x86_64 (for --emulate)" in proc.stdout


def test_the_runners_config_has_absolute_paths_and_the_runs_options(
    devices_xen: Path, xen_host: nested.XenHost, tmp_path: Path,
) -> None:
    # What `unik run -t xen` hands to `xl create -c`: the artifact's files by absolute path, the
    # run's --mem/--vcpus/--net/--block, and the application's arguments after `--`.
    from unik_xen.target import domain_config

    out = devices_xen / "dist" / "devices-xen"
    config = domain_config(_manifest(devices_xen), out, {"uplink": "br9"}, {"storage": str(tmp_path / "d.img")},
                           "512M", 2, ["--greeting=hi there", "--count=2"])
    path = tmp_path / "run.xl"
    path.write_text(config.text())
    parsed = xl_parse(path, xen_host.root / "usr/lib/x86_64-linux-gnu")
    assert parsed["readfile"] == 0, parsed
    assert parsed["kernel"] == str(out / "vmlinux") and parsed["ramdisk"] == str(out / "initramfs.cpio.zst")
    assert (parsed["memory"], parsed["vcpus"]) == (512, 2)
    assert parsed["cmdline"].endswith(' "--greeting=hi there" --count=2')  # the kernel's quoting
    assert f" -- --net-mac uplink={instance_mac('devices', 'uplink')} " in parsed["cmdline"]
    assert parsed["vif"][0].endswith(",bridge=br9,type=vif")
    assert parsed["parsed_disks"] == [{"rc": 0, "target": str(tmp_path / "d.img"), "vdev": "xvda"}]
