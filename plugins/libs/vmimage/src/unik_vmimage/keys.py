"""The keys and names every VM target shares: the kernel, the initramfs, the boot timeout, ``--publish``.

A VM target declares these beside its own (``--net`` and ``--mem`` say target-specific
things: a TAP or a bridge, QEMU's or xl's sizes).  Keys the runner reads are declared as
target keys, so that ``unik run --boot-timeout 30`` parses (the core's command line
knows only target and provider keys).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from unik.errors import RunError
from unik.keys import Key, KeyValues

PUBLISH = Key("publish", "forward a host port to the guest on --net DEVICE=user, like docker run -p: "
              "[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp] (repeatable)", metavar="[IP:]HOST:GUEST[/udp]",
              repeatable=True)
BLOCK = Key("block", "disk image backing a block device: DEVICE=FILE (e.g. storage=disk.img)",
            per_device=True, metavar="DEVICE=FILE")
BOOT_TIMEOUT = Key("boot_timeout", "seconds to wait for the guest's first console output before "
                   "stopping it (0: 20 under KVM, 90 under TCG)", type="float", default="0", metavar="SECONDS")
KERNEL = Key("kernel", "kernel provider: debian[:PACKAGE], source, or a kernel image's path",
             default="debian", metavar="PROVIDER|PATH", stage="configure")
KERNEL_MODULES = Key("kernel_modules", "modules tree (/lib/modules/VERSION) of a kernel given by path",
                     metavar="DIR", stage="configure")
COMPRESSION = Key("initramfs_compression", "initramfs compression (zstd unpacks fastest at boot)",
                  default="zstd", choices=("zstd", "gzip", "xz", "none"), stage="configure")



def check_image(value: Any, keys: KeyValues) -> None:
    """``--image``: formats of :data:`unik_vmimage.disk.images.FORMATS`, comma-separated."""
    from .disk.images import parse_formats  # only configure and build check it

    parse_formats(str(value))


IMAGE = Key("image", "also write the image in these forms (comma-separated): disk (<name>.raw, a GPT disk that "
            "UEFI firmware boots: no -kernel), qcow2, gce (disk.raw in <name>.gce.tar.gz), oci (an OCI image "
            "layout for KubeVirt and urunc, and <name>.kubevirt.yaml); none by default",
            metavar="FORMAT[,FORMAT]", stage="configure", check=check_image)

#: The build keys of every VM target.
BUILD_KEYS = (KERNEL, KERNEL_MODULES, COMPRESSION)

#: Kernel modules every virtio device needs, whatever the machine: the PCI transport
#: (q35) and the MMIO one (microvm).
VIRTIO_TRANSPORTS = ("virtio_pci", "virtio_mmio")


_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def check_mac(value: Any, keys: KeyValues) -> None:
    """A unicast MAC address written ``aa:bb:cc:dd:ee:ff``."""
    text = str(value).lower()
    if not _MAC.fullmatch(text):
        raise ValueError(f"{value!r} is not a MAC address: give six hexadecimal bytes, e.g. 02:00:00:00:00:01")
    if int(text[:2], 16) & 1:
        raise ValueError(f"{value} is a multicast address: a NIC needs a unicast one (the first byte even)")


NET_MAC = Key("net_mac", "MAC address of a network device: DEVICE=MAC (default: its own for each instance, "
              "derived from the instance's name and the device's)", per_device=True, metavar="DEVICE=MAC",
              check=check_mac)


def instance_mac(instance: str, device: str) -> str:
    """The MAC address of network device ``device`` of instance ``instance``: locally administered, unicast.

    Each instance of an image gets its own (two instances on one bridge must not share
    one), the same every time the instance starts; 46 of its bits come from a hash of
    both names, so distinct instances collide with a chance of about n² / 2⁴⁷.
    """
    import hashlib  # here: every command imports this module

    digest = bytearray(hashlib.sha256(f"{instance}\0{device}".encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02  # locally administered, unicast
    return digest.hex(":")


def nic_macs(devices: Sequence[Mapping[str, Any]], instance: str, given: Mapping[str, str]) -> dict[str, str]:
    """Each network device's MAC (by name): ``--net-mac``'s, else the instance's own (:func:`instance_mac`).

    ``devices`` are a VM manifest's entries; a ``--net-mac`` for a device that is not a
    network device of the application is refused.
    """
    nics = [str(d["name"]) for d in devices if d["kind"] == "network"]
    unknown = sorted(set(given) - set(nics))
    if unknown:
        raise RunError(f"--net-mac {unknown[0]}=...: the application has no network device {unknown[0]!r}"
                       + (f" (it has: {', '.join(nics)})" if nics else ""))
    return {name: given[name].lower() if name in given else instance_mac(instance, name) for name in nics}


def mac_args(macs: Mapping[str, str]) -> list[str]:
    """The guest's ``--net-mac DEVICE=MAC`` arguments: it finds each NIC by the address its host gave it."""
    return [arg for name, mac in macs.items() for arg in ("--net-mac", f"{name}={mac}")]
