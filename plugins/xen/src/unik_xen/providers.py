"""Device providers and keys of the xen target.

The guest side is unik's VM guest code, unchanged: the console is the init's standard
output (``hvc0``, Xen's console ring, shown by ``xl console``), the NIC
(``xen-netfront``) is read through the AF_PACKET TPACKET_V3 ring, and disks
(``xen-blkfront``, ``/dev/xvdX``) are raw block devices found by the virtual device name
the emitter gave them in ``<name>.xl``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from unik.errors import BuildError
from unik.keys import Key, KeyValues
from unik.provider import BlockProvider, DeviceProvider, Provider, Request, posix_providers
from unik_vmimage.keys import BLOCK, BOOT_TIMEOUT, NET_MAC, PUBLISH, VIRTIO_TRANSPORTS
from unik_vmimage.keys import BUILD_KEYS as VM_BUILD_KEYS
from unik_vmimage.target import GuestProvider, VmNeeds

from .xlconfig import GUEST_TYPES, TSC_MODES
from .xlconfig import ON_CRASH as ON_CRASH_CHOICES

XEN: frozenset[str] = frozenset({"xen"})

# -- keys ---------------------------------------------------------------------------------

NET = Key("net", "host side of a network device: DEVICE=BRIDGE in the control domain (default xenbr0); "
          "with --emulate DEVICE=user (QEMU's user network, ports published with --publish)",
          per_device=True, metavar="DEVICE=BRIDGE|user")


def check_mem(value: Any, keys: KeyValues) -> None:
    """``--mem`` as xl will take it (:func:`unik_xen.xlconfig.mem_mib`)."""
    from .xlconfig import mem_mib

    try:
        mem_mib(str(value))
    except BuildError as exc:
        raise ValueError(str(exc).removeprefix("--mem ")) from None


MEM = Key("mem", "memory of the guest in MiB (256), or with a unit (256M, 1G)", default="256M", metavar="SIZE",
          check=check_mem)
VCPUS = Key("vcpus", "virtual CPUs of the guest", type="int", default="1", metavar="N")
XEN_TYPE = Key("xen_type", "guest type: pvh (hardware-assisted, the default) or pv (paravirtualised, no "
               "hardware virtualisation needed)", default="pvh", choices=GUEST_TYPES,
               stage="configure")
TSC_MODE = Key("tsc_mode", "xl tsc_mode: native (the guest reads the TSC itself; needed for PVH guests "
               "nested under QEMU TCG, whose emulated SVM lacks NRIPS) or default (Xen decides)",
               default="native", choices=TSC_MODES, stage="configure")
ON_CRASH = Key("on_crash", "what Xen does when the guest crashes", default="destroy",
               choices=ON_CRASH_CHOICES, stage="configure")
EMULATE = Key("emulate", "boot the PVH image under QEMU's PVH loader (TCG or KVM) instead of Xen: a quick "
              "check on a host that is not a Xen control domain (no Xen devices then)", type="bool",
              default="false")

RUN_KEYS = (NET, NET_MAC, PUBLISH, BLOCK, MEM, VCPUS, EMULATE, BOOT_TIMEOUT)
BUILD_KEYS = (*VM_BUILD_KEYS, XEN_TYPE, TSC_MODE, ON_CRASH)

#: Where the emitter writes the block device -> xvd name map inside the image.
DISKS_FILE = "unik/xen-disks.json"


class _Xen(GuestProvider):
    targets: ClassVar[frozenset[str] | None] = XEN


Console, MonotonicClock, WallClock, Sleep, Random = posix_providers(_Xen, "xen", {
    "console": "Xen's console (hvc0), shown by `xl create -c` / `xl console`",
    "monotonic_clock": "the guest kernel's CLOCK_MONOTONIC (the Xen clocksource or the TSC)",
    "wall_clock": "the guest kernel's CLOCK_REALTIME, from Xen's shared wallclock",
    "sleep": "asyncio timers on the guest's monotonic clock",
    "random": "the guest kernel's CSPRNG (seeded by RDRAND/RDSEED, which Xen passes through)",
}, console="hvc-console")


class Block(_Xen, BlockProvider):
    """A raw Xen virtual disk (blkfront), found by the xvd name the emitter gave it in the image's disk map.

    ``file`` is for the xl configuration; blkback's sectors are 512 bytes, which the guest
    reads from the disk rather than checks against the table.
    """

    PLUGIN_NAME = "xen.blkfront"
    implementation = "unik_vmguest.xen:XenBlock"
    description = "a raw xen-blkfront disk (/dev/xvdX) backed by a file in the control domain (--block DEVICE=FILE)"
    keys = (BLOCK,)
    sector_sizes = (512,)
    sector_sizes_why = "blkback's disks have 512-byte sectors"
    vm = VmNeeds(kernel_modules=("xen_blkfront",), mounts=(("devtmpfs", "/dev"), ("sysfs", "/sys")), attach="disk")

    @classmethod
    def table_options(cls, request: Request) -> dict[str, Any]:
        """The table's options but the sector size (checked: 512)."""
        options = super().table_options(request)
        del options["sector_size"]
        return options


class Network(_Xen, DeviceProvider):
    """A Xen virtual NIC (netfront), read through an AF_PACKET TPACKET_V3 ring.

    The guest finds the NIC by the MAC address the vif line gives it, passed on too (``--net-mac``).
    """

    PLUGIN_NAME = "xen.netfront"
    kind = "network"
    implementation = "unik_fdio.packet:PacketNetwork"
    description = ("a xen-netfront NIC on a bridge of the control domain (--net DEVICE=BRIDGE), "
                   "through a TPACKET_V3 ring")
    keys = (NET, NET_MAC)
    device_keys = (("mac", "net_mac"),)
    #: virtio-net too: `unik run --emulate --net DEVICE=user` boots the image under QEMU.
    vm = VmNeeds(kernel_modules=("xen_netfront", *VIRTIO_TRANSPORTS, "virtio_net"), attach="vif")


PROVIDERS: list[type[Provider]] = [Console, MonotonicClock, WallClock, Sleep, Random, Block, Network]

