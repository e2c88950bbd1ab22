"""The libvirt domain unik writes: typed records, read back strictly, valid for libvirt (virt-xml-validate)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from example_support import copy_example
from host_tools import require
from unik.errors import BuildError
from unik.plan import Plan
from unik.plugins import PluginManager
from unik_vmimage.keys import instance_mac, nic_macs
from unik_vmimage.libvirt_xml import DirectBoot, Disk, Domain, Interface, host_side
from unik_vmimage.target import InstanceSpec, VmTarget
from vm_support import unik

EXAMPLES = ("hello", "http", "https", "kv", "fetch", "fastapi")
BOOT = DirectBoot("/d/vmlinuz", "/d/initramfs.cpio.zst",
                  "console=ttyS0 unik_exit=poweroff -- --net-mac service=02:00:00:00:00:01")


def validate(xml: str, where: Path) -> None:
    """virt-xml-validate against libvirt's own domain schema; AssertionError with its message if invalid."""
    require("virt-xml-validate")
    path = where / "domain.xml"
    path.write_text(xml)
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr + xml


def _domain(**changes: Any) -> Domain:
    values: dict[str, Any] = dict(
        type="qemu", name="http", memory_mib=256, boot=BOOT,
        disks=(Disk("storage", "/d/disk.img", "vda", sector_size=4096),),
        interfaces=(Interface("02:00:00:00:00:01", "ethernet", "tapv0"),), console_log="/d/http.console.log")
    values.update(changes)
    return Domain(**values)


def test_a_qemu_domain_has_what_the_image_needs_and_reads_back(tmp_path: Path) -> None:
    domain = _domain()
    xml = domain.to_xml()
    validate(xml, tmp_path)
    assert Domain.from_xml(xml) == domain
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu" and root.findtext("memory") == "256" and root.findtext("vcpu") == "1"
    assert root.find("os/type").get("machine") == "q35"  # type: ignore[union-attr]
    assert (root.findtext("os/kernel"), root.findtext("os/initrd")) == ("/d/vmlinuz", "/d/initramfs.cpio.zst")
    assert root.find("features/acpi") is not None  # the power button unik stop presses
    assert root.find("devices/disk/serial").text == "storage"  # type: ignore[union-attr]
    assert root.find("devices/interface/mac").get("address") == "02:00:00:00:00:01"  # type: ignore[union-attr]
    assert root.find("devices/interface/target").get("dev") == "tapv0"  # type: ignore[union-attr]
    assert root.find("devices/rng").get("model") == "virtio"  # type: ignore[union-attr]  # the boot seed
    assert root.find("devices/serial/log").get("file") == "/d/http.console.log"  # type: ignore[union-attr]
    assert root.findtext("on_crash") == "destroy"
    kvm = _domain(type="kvm").to_xml()
    validate(kvm, tmp_path)
    assert '<cpu mode="host-passthrough" />' in kvm


def test_a_xen_domain_is_pvh_for_libxl(tmp_path: Path) -> None:
    domain = Domain(type="xen", name="http", memory_mib=256, boot=DirectBoot("/d/vmlinux", "/d/i.cpio.zst", "c"),
                    disks=(Disk("storage", "/d/disk.img", "xvda", "xen", read_only=True),),
                    interfaces=(Interface("02:00:00:00:00:01", "bridge", "xenbr0", None),), on_crash="preserve")
    xml = domain.to_xml()
    validate(xml, tmp_path)
    assert Domain.from_xml(xml) == domain
    root = ET.fromstring(xml)
    assert root.find("os/type").text == "xenpvh"  # type: ignore[union-attr]
    assert root.find("devices/rng") is None and root.find("features") is None  # Xen gives neither
    assert root.findtext("on_crash") == "preserve"


def test_nothing_but_what_unik_writes_is_read_and_no_seed_is_written() -> None:
    xml = _domain().to_xml()
    refused = [
        (xml.replace("<vcpu>", "<iothreads>1</iothreads><vcpu>"), "<iothreads> in <domain> is not an element"),
        (xml.replace('<disk type="file"', '<disk type="file" snapshot="no"'), "attribute 'snapshot'"),
        (xml.replace("<rng ", "<watchdog model='i6300esb'/><rng "), "element <watchdog>"),
        (xml.replace('unit="MiB"', 'unit="KiB"'), "memory is not in MiB"),
        (xml.replace("<vcpu>1<", "<vcpu>one<"), "<vcpu> is 'one', not an integer"),
        ("<domain", "not XML"),
    ]
    for text, message in refused:
        with pytest.raises(BuildError, match=message):
            Domain.from_xml(text)
    with pytest.raises(BuildError, match="carries a boot seed"):
        DirectBoot("/k", "/i", "console=ttyS0 unik_seed=00112233")
    with pytest.raises(BuildError, match="not an absolute path"):
        DirectBoot("vmlinuz", "/i", "")
    with pytest.raises(BuildError, match="'02:00:00:00:00:01' names two devices"):
        _domain(interfaces=(Interface("02:00:00:00:00:01", "user"), Interface("02:00:00:00:00:01", "user")))
    with pytest.raises(BuildError, match="a Xen guest's vif is on a bridge"):
        _domain(type="xen", disks=(), console_log=None)
    with pytest.raises(TypeError):
        Domain(type="qemu", name="x", memory_mib=1, boot=BOOT, hugepages=True)  # type: ignore[call-arg]


def test_net_names_the_host_side() -> None:
    mac = "02:00:00:00:00:09"
    assert host_side("service", None, mac) == Interface(mac, "network", "default")
    assert host_side("service", "auto", mac) == Interface(mac, "network", "default")
    assert host_side("service", "network:lan", mac) == Interface(mac, "network", "lan")
    assert host_side("service", "bridge:br0", mac) == Interface(mac, "bridge", "br0")
    assert host_side("service", "user", mac) == Interface(mac, "user")
    assert host_side("service", "tap3", mac) == Interface(mac, "ethernet", "tap3")
    with pytest.raises(BuildError, match="give network:NAME, bridge:NAME, user or a TAP's name"):
        host_side("service", "a b", mac)


def _plan(example: str, target: str, tmp_path: Path) -> Plan:
    root = copy_example(example, tmp_path / f"{example}-{target}")
    if example == "https":  # its certificate, as its README makes it
        unik("tls", "selfsigned", "-o", "certs", cwd=root)
    unik("configure", "-t", target, cwd=root)
    return Plan.loads((root / "_build" / target / "plan.json").read_text())


@pytest.mark.parametrize("target", ["virtio", "xen"])
def test_every_examples_domain_is_valid_for_libvirt(target: str, tmp_path: Path) -> None:
    # Each example's devices as the emitter records them, rendered as `unik build` renders them:
    # the image itself is not needed for the domain (tests/virtio/test_libvirt_deploy builds and boots http and kv).
    require("virt-xml-validate")
    vm = PluginManager().target(target)
    assert isinstance(vm, VmTarget)
    for example in EXAMPLES:
        plan = _plan(example, target, tmp_path)
        devices = vm.image_devices(plan).devices
        manifest = {"devices": devices, "mem": "256M", "cmdline": " ".join(vm.cmdline), "on_crash": "destroy",
                    "kernel": {"file": "vmlinux" if target == "xen" else "vmlinuz"},
                    "initramfs": {"file": "initramfs.cpio.zst"}}
        spec = InstanceSpec(name=example, macs=nic_macs(devices, example, {}), root=tmp_path,
                            domain_type=None if target == "xen" else "qemu",
                            console_log=None if target == "xen" else str(tmp_path / "console.log"))
        domain = vm.libvirt_domain(tmp_path, manifest, spec)
        xml = domain.to_xml()
        validate(xml, tmp_path)
        assert Domain.from_xml(xml) == domain
        assert "unik_seed" not in xml  # nothing per boot: the seed comes through virtio-rng
        for nic in domain.interfaces:
            assert nic.mac == instance_mac(example, "service")
            assert f"--net-mac service={nic.mac}" in domain.boot.cmdline
        if target == "virtio":
            assert ET.fromstring(xml).find("devices/rng") is not None
        if example == "kv":
            assert [d.serial for d in domain.disks] == ["storage"]


def test_virt_xml_validate_refuses_what_libvirt_would(tmp_path: Path) -> None:
    # The validator itself is no rubber stamp here.
    require("virt-xml-validate", "xmllint")
    with pytest.raises(AssertionError):
        validate(_domain().to_xml().replace("<vcpu>1</vcpu>", "<vcpu>1</vcpu><vcpus>x</vcpus>"), tmp_path)
