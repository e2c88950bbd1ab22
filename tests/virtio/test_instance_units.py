"""Many instances of one image: each NIC's MAC is the instance's own; ``--mem`` is MiB on every engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from unik.errors import BuildError, RunError
from unik.keys import KeyValues
from unik_virtio.providers import check_mem
from unik_virtio.target import _devices, firecracker_config
from unik_vmimage import memory
from unik_vmimage.keys import check_mac, instance_mac, mac_args, nic_macs
from unik_xen.providers import check_mem as xen_check_mem
from unik_xen.target import domain_config
from unik_xen.xlconfig import mem_mib

NIC = {"name": "service", "kind": "network", "qemu_device": "virtio-net", "xl": "vif"}
DEVICES: list[dict[str, Any]] = [{"name": "console", "kind": "console", "qemu_device": None}, NIC]


def test_each_instance_has_its_own_locally_administered_unicast_mac() -> None:
    macs = {instance_mac(f"http-{n}", "service") for n in range(1, 200)} | {instance_mac("http", "service")}
    assert len(macs) == 200  # two instances of one image never share an address
    for mac in macs:
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01, mac  # locally administered, unicast
        check_mac(mac, KeyValues(()))
    assert instance_mac("http", "service") == instance_mac("http", "service")  # the same at every start
    assert instance_mac("http", "service") != instance_mac("http", "uplink")


def test_net_mac_overrides_a_device_and_is_checked() -> None:
    assert nic_macs(DEVICES, "web", {}) == {"service": instance_mac("web", "service")}
    assert nic_macs(DEVICES, "web", {"service": "02:AA:00:00:00:01"}) == {"service": "02:aa:00:00:00:01"}
    with pytest.raises(RunError, match=r"--net-mac storage=\.\.\.: the application has no network device 'storage' "
                                       r"\(it has: service\)"):
        nic_macs(DEVICES, "web", {"storage": "02:00:00:00:00:01"})
    for bad, why in (("02:00:00:00:00", "not a MAC address"), ("03:00:00:00:00:01", "multicast")):
        with pytest.raises(ValueError, match=why):
            check_mac(bad, KeyValues(()))
    assert mac_args({"service": "02:00:00:00:00:01"}) == ["--net-mac", "service=02:00:00:00:00:01"]


def test_every_engine_configuration_carries_the_instances_mac() -> None:
    macs = {"service": "02:00:00:00:00:07"}
    # QEMU: the NIC's -device
    devices, args, _ = _devices(DEVICES, {}, {"service": "tap7"}, [], (None, None), macs)
    assert any("mac=02:00:00:00:00:07" in d for d in devices) and "ifname=tap7" in " ".join(args)
    # Firecracker: the interface and the kernel command line
    fc = firecracker_config("initramfs.cpio.zst", "console=ttyS0", "256", DEVICES, {}, macs).to_json()
    assert fc["network-interfaces"][0]["guest_mac"] == "02:00:00:00:00:07"
    assert fc["boot-source"]["boot_args"].endswith("-- --net-mac service=02:00:00:00:00:07")
    # xl: the vif and the command line; the domain is named after the instance
    manifest = {"name": "http", "xen_type": "pvh", "kernel": {"file": "vmlinux"}, "mem": "256M",
                "initramfs": {"file": "initramfs.cpio.zst"}, "cmdline": "console=hvc0", "on_crash": "destroy",
                "devices": DEVICES}
    xl = domain_config(manifest, None, {}, {}, macs=macs, name="http-2").text()
    assert 'name = "http-2"' in xl and "mac=02:00:00:00:00:07" in xl
    assert "-- --net-mac service=02:00:00:00:00:07" in xl
    # without one given, the instance's own
    default = domain_config(manifest, None, {}, {}).text()
    assert f"mac={instance_mac('http', 'service')}" in default


def test_mem_is_mib_on_every_target_and_engine() -> None:
    for given in ("256", "256M", "256m", "256MB", "256MiB", "0.25G", "262144K"):
        assert memory.parse_mib(given) == 256, given
        assert mem_mib(given) == 256, given  # xl's memory
        fc = firecracker_config("i", "c", given, [], {}).to_json()
        assert fc["machine-config"]["mem_size_mib"] == 256, given
    assert memory.parse_mib("1GiB") == 1024
    for bad in ("lots", "512XB", "256 MiB of RAM", "0", "0.5K"):
        with pytest.raises(ValueError, match=r"not a memory size|less than 1 MiB"):
            memory.parse_mib(bad)
    with pytest.raises(ValueError, match="not a memory size: give MiB"):
        check_mem("512XB", KeyValues(()))
    with pytest.raises(ValueError, match="'512XB' is not a memory size"):
        xen_check_mem("512XB", KeyValues(()))
    with pytest.raises(BuildError, match=r"^--mem 'lots' is not a memory size"):
        firecracker_config("i", "c", "lots", [], {})
    with pytest.raises(RunError, match=r"^--mem 'lots' is not a memory size"):
        memory.qemu_mib("lots")


def test_qemu_gets_mem_in_mib_whatever_unit_was_given(tmp_path: Path) -> None:
    from unik_vmimage.qemu import Boot

    command = Boot(tmp_path / "k", tmp_path / "i", "q35", "tcg", mem="512MB").command("qemu")
    assert command[command.index("-m") + 1] == "512M"
