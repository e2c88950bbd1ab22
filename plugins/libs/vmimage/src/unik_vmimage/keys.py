"""The keys and names every VM target shares: the kernel, the initramfs, the boot timeout, ``--publish``.

A VM target declares these beside its own (``--net`` and ``--mem`` say target-specific
things: a TAP or a bridge, QEMU's or xl's sizes).  Keys the runner reads are declared as
target keys, so that ``unik run --boot-timeout 30`` parses (the core's command line
knows only target and provider keys).
"""

from __future__ import annotations

from unik.keys import Key

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

#: The build keys of every VM target.
BUILD_KEYS = (KERNEL, KERNEL_MODULES, COMPRESSION)

#: Kernel modules every virtio device needs, whatever the machine: the PCI transport
#: (q35) and the MMIO one (microvm).
VIRTIO_TRANSPORTS = ("virtio_pci", "virtio_mmio")


def device_mac(device: str) -> str:
    """A stable, locally administered MAC address for a network device (QEMU's 52:54:00 prefix)."""
    import hashlib  # here: only configure needs it, and every command imports this module

    tail = hashlib.sha256(device.encode()).digest()[:3]
    return "52:54:00:" + tail.hex(":")
