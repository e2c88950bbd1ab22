"""Device providers and keys of the virtio target.

The console, clocks, sleep and random are the core's POSIX devices over the guest
kernel (:func:`unik.provider.posix_providers`); the implementations run in the guest
(:mod:`unik.posix`, :mod:`unik_vmguest`, :mod:`unik_fdio`); each provider also says
what the image and the VM need for it (:class:`~unik_vmimage.target.VmNeeds`):
kernel modules, mounts and the QEMU device the runner attaches.
"""

from __future__ import annotations

from typing import Any, ClassVar

from unik.keys import Key, KeyValues
from unik.provider import BlockProvider, DeviceProvider, Provider, posix_providers
from unik_vmimage.keys import BLOCK, BOOT_TIMEOUT, NET_MAC, PUBLISH
from unik_vmimage.target import GuestProvider, VmNeeds

VIRTIO: frozenset[str] = frozenset({"virtio"})

# -- keys ---------------------------------------------------------------------------------
# Keys the runner reads are declared as target keys too, so that `unik run --mem 512M`
# parses (the core's command line only knows target and provider keys).

NET = Key("net", "host side of a network device: DEVICE=user (QEMU's user network: no root, ports "
          "published with --publish), DEVICE=TAP (an existing TAP, e.g. service=tap0) or DEVICE=auto (a TAP made for "
          "the run, its host side given an address in --ipv4's subnet)",
          per_device=True, metavar="DEVICE=user|TAP|auto")


def check_mem(value: Any, keys: KeyValues) -> None:
    """``--mem``: MiB, or a number with a binary unit (:func:`unik_vmimage.memory.parse_mib`)."""
    from unik_vmimage.memory import parse_mib

    parse_mib(str(value))


MEM = Key("mem", "memory of the VM in MiB (256), or with a unit (256M, 1G)", default="256M", metavar="SIZE",
          check=check_mem)
MACHINE = Key("machine", "QEMU machine: auto is microvm under KVM and q35 under TCG", default="auto",
              choices=("auto", "microvm", "q35"))
ACCEL = Key("accel", "accelerator: auto probes KVM and falls back to TCG", default="auto",
            choices=("auto", "kvm", "tcg"))
SAVE_SNAPSHOT = Key("save_snapshot", "boot cold, save a snapshot beside the image once the application serves, "
                    "and stop: later runs with the same options start from it", type="bool", default="false")
NO_SNAPSHOT = Key("no_snapshot", "boot cold even when the image has a snapshot matching the run", type="bool",
                  default="false")
RUN_KEYS = (NET, NET_MAC, PUBLISH, BLOCK, MEM, MACHINE, ACCEL, BOOT_TIMEOUT, SAVE_SNAPSHOT, NO_SNAPSHOT)


class _Virtio(GuestProvider):
    targets: ClassVar[frozenset[str] | None] = VIRTIO


Console, MonotonicClock, WallClock, Sleep, Random = posix_providers(_Virtio, "virtio", {
    "console": "the VM's serial port (ttyS0), shown by `unik run`",
    "monotonic_clock": "the guest kernel's CLOCK_MONOTONIC (kvm-clock or TSC)",
    "wall_clock": "the guest kernel's CLOCK_REALTIME, set from the RTC at boot",
    "sleep": "asyncio timers on the guest's monotonic clock",
    "random": "the guest kernel's CSPRNG (seeded from the host through virtio-rng at every boot, and RDRAND)",
}, console="serial-console")


class Entropy(_Virtio):
    """virtio-rng: the host's randomness."""

    PLUGIN_NAME = "virtio.virtio-rng"
    kind = "entropy"
    implementation = "unik_vmguest.random:VirtioEntropy"
    description = "virtio-rng (/dev/hwrng), the host's /dev/urandom"
    priority = -10
    vm = VmNeeds(kernel_modules=("virtio_rng",), mounts=(("devtmpfs", "/dev"),), attach="virtio-rng")


class Block(_Virtio, BlockProvider):
    """A raw virtio disk, found in the guest by its serial (the device's name).

    The runner attaches ``--block``'s file, else ``file``; the sector size becomes the
    virtio disk's logical and physical block size.
    """

    PLUGIN_NAME = "virtio.virtio-blk"
    implementation = "unik_vmguest.block:VirtioBlock"
    description = "a raw virtio-blk disk backed by a host file (--block DEVICE=FILE)"
    keys = (BLOCK,)
    vm = VmNeeds(kernel_modules=("virtio_blk",), mounts=(("devtmpfs", "/dev"), ("sysfs", "/sys")),
                 attach="virtio-blk")


class Network(_Virtio, DeviceProvider):
    """A virtio-net NIC, read through an AF_PACKET TPACKET_V3 ring.

    The guest finds the NIC by the MAC address the runner gives it and passes it (``--net-mac``).
    """

    PLUGIN_NAME = "virtio.virtio-net"
    kind = "network"
    implementation = "unik_fdio.packet:PacketNetwork"
    description = ("a virtio-net NIC on QEMU's user network or a host TAP (--net DEVICE=user|TAP|auto), "
                   "through a TPACKET_V3 ring (C)")
    keys = (NET, NET_MAC)
    device_keys = (("mac", "net_mac"),)
    vm = VmNeeds(kernel_modules=("virtio_net",), attach="virtio-net")


PROVIDERS: list[type[Provider]] = [Console, MonotonicClock, WallClock, Sleep, Random, Entropy, Block, Network]

#: Modules every image loads: the ACPI power button, which `unik stop` (QEMU's
#: system_powerdown) presses to stop the application gracefully, and virtio-rng, through
#: which the init reads the boot seed it credits to the kernel (never the command line).
BASE_MODULES = ("button", "virtio_rng")

