"""A libvirt domain (``<name>.libvirt.xml``) as typed records.

:class:`Domain` and its parts are frozen records of exactly what unik writes, each
checking its values when it is made; :meth:`Domain.to_xml` renders libvirt's domain
XML (``formatdomain``), and :meth:`Domain.from_xml` reads such a document back,
refusing an element or attribute unik does not write, so what is deployed is what
these records say.  Two kinds of domain:

* ``kvm`` or ``qemu`` (libvirt's QEMU driver; ``qemu`` is TCG, for hosts whose KVM
  cannot boot a guest): a q35 machine with ACPI (its power button stops the application
  gracefully), direct kernel boot of ``vmlinuz`` and the initramfs, virtio disks found
  by their serial, virtio NICs with the instance's MACs, virtio-rng (the guest's boot
  seed: the kernel command line carries none), and a serial console logged to a file;
* ``xen`` (libvirt's libxl driver): a PVH guest (``<type>xenpvh</type>``) booting the ELF
  ``vmlinux``, Xen disks by their ``xvd`` names, vifs on bridges, the ``hvc0`` console.
  Xen offers no virtio-rng to a PVH guest: its kernel seeds from RDRAND/RDSEED.

The init reports the application's exit status on the console and powers the VM off
(``unik_exit=poweroff``): libvirt has no ``isa-debug-exit`` device.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from unik.errors import BuildError

DOMAIN_TYPES = ("kvm", "qemu", "xen")
ON_CRASH = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart")
#: How a NIC reaches the host: a libvirt network, a bridge, an existing TAP (``ethernet``) or QEMU's user network.
NIC_TYPES = ("network", "bridge", "ethernet", "user")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,63}")


def _fail(what: str) -> BuildError:
    return BuildError(f"libvirt domain: {what}")


@dataclass(frozen=True)
class DirectBoot:
    """``<os>``'s kernel, initramfs and command line (absolute paths: libvirtd reads them)."""

    kernel: str
    initrd: str
    cmdline: str

    def __post_init__(self) -> None:
        for path in (self.kernel, self.initrd):
            if not path.startswith("/"):
                raise _fail(f"{path!r} is not an absolute path (libvirtd opens it from its own directory)")
        if "unik_seed=" in self.cmdline:
            raise _fail("the kernel command line carries a boot seed: every instance would share it "
                        "(the guest reads its seed from virtio-rng)")


@dataclass(frozen=True)
class Disk:
    """A raw disk image: found by the guest by its ``serial`` (virtio) or its ``target`` name (Xen)."""

    serial: str
    source: str
    target: str
    bus: str = "virtio"
    read_only: bool = False
    #: Logical and physical sector size when not 512 bytes.
    sector_size: int | None = None

    def __post_init__(self) -> None:
        if self.bus not in ("virtio", "xen"):
            raise _fail(f"disk {self.serial}: bus {self.bus!r} is not virtio or xen")
        if not re.fullmatch(r"(vd|xvd)[a-z]+", self.target):
            raise _fail(f"disk {self.serial}: target {self.target!r} is not a vdX or xvdX name")
        if not self.source.startswith("/"):
            raise _fail(f"disk {self.serial}: {self.source!r} is not an absolute path")
        if self.sector_size is not None and self.sector_size not in (1024, 2048, 4096):
            raise _fail(f"disk {self.serial}: sector size {self.sector_size} is not 1024, 2048 or 4096 "
                        "(None: 512)")


@dataclass(frozen=True)
class Interface:
    """A NIC: its MAC (the guest finds it by that address) and the host side (:data:`NIC_TYPES`)."""

    mac: str
    type: str
    source: str | None = None
    #: ``virtio`` under QEMU (with the checksum offloads towards the guest off: unik's
    #: AF_PACKET ring sees no checksum metadata); ``None`` under Xen (netfront).
    model: str | None = "virtio"

    def __post_init__(self) -> None:
        if not _MAC.fullmatch(self.mac):
            raise _fail(f"interface MAC {self.mac!r} is not written aa:bb:cc:dd:ee:ff")
        if self.type not in NIC_TYPES:
            raise _fail(f"interface {self.mac}: type {self.type!r} is not one of {', '.join(NIC_TYPES)}")
        if (self.source is None) != (self.type == "user"):
            raise _fail(f"interface {self.mac}: a {self.type} interface "
                        + ("takes no source" if self.type == "user" else "needs a source (network, bridge or TAP)"))
        if self.model not in ("virtio", None):
            raise _fail(f"interface {self.mac}: model {self.model!r} is not virtio")


@dataclass(frozen=True)
class Domain:
    """A whole domain: one record per part, nothing else written."""

    type: str
    name: str
    memory_mib: int
    boot: DirectBoot
    vcpus: int = 1
    disks: Sequence[Disk] = field(default_factory=tuple)
    interfaces: Sequence[Interface] = field(default_factory=tuple)
    #: The serial console's log file on the libvirt host (QEMU only; ``None``: no log).
    console_log: str | None = None
    on_crash: str = "destroy"

    def __post_init__(self) -> None:
        if self.type not in DOMAIN_TYPES:
            raise _fail(f"type {self.type!r} is not one of {', '.join(DOMAIN_TYPES)}")
        if not _NAME.fullmatch(self.name):
            raise _fail(f"name {self.name!r}: letters, digits, '.', '_', '+' and '-' (at most 63)")
        if self.memory_mib < 1 or not 1 <= self.vcpus <= 255:
            raise _fail(f"{self.name}: {self.memory_mib} MiB and {self.vcpus} vCPUs cannot boot")
        if self.on_crash not in ON_CRASH:
            raise _fail(f"on_crash {self.on_crash!r} is not one of {', '.join(ON_CRASH)}")
        xen = self.type == "xen"
        for disk in self.disks:
            if (disk.bus == "xen") != xen:
                raise _fail(f"disk {disk.serial}: a {disk.bus} disk in a {self.type} domain")
        for nic in self.interfaces:
            if xen and (nic.model is not None or nic.type != "bridge"):
                raise _fail(f"interface {nic.mac}: a Xen guest's vif is on a bridge, with no model")
        if xen and self.console_log is not None:
            raise _fail("a Xen guest's console is hvc0, read with virsh console: no log file")
        serials = [d.serial for d in self.disks]
        twice = sorted({s for s in serials if serials.count(s) > 1} | _twice(d.target for d in self.disks)
                       | _twice(n.mac for n in self.interfaces))
        if twice:
            raise _fail(f"{twice[0]!r} names two devices")

    # -- writing ------------------------------------------------------------------------

    def to_xml(self) -> str:
        """The domain's XML document."""
        xen = self.type == "xen"
        root = ET.Element("domain", type=self.type)
        ET.SubElement(root, "name").text = self.name
        ET.SubElement(root, "memory", unit="MiB").text = str(self.memory_mib)
        ET.SubElement(root, "vcpu").text = str(self.vcpus)
        os_ = ET.SubElement(root, "os")
        if xen:
            ET.SubElement(os_, "type", arch="x86_64", machine="xenpvh").text = "xenpvh"
        else:
            ET.SubElement(os_, "type", arch="x86_64", machine="q35").text = "hvm"
        ET.SubElement(os_, "kernel").text = self.boot.kernel
        ET.SubElement(os_, "initrd").text = self.boot.initrd
        ET.SubElement(os_, "cmdline").text = self.boot.cmdline
        if not xen:
            ET.SubElement(ET.SubElement(root, "features"), "acpi")  # the power button `unik stop` presses
            if self.type == "kvm":
                ET.SubElement(root, "cpu", mode="host-passthrough")
            else:  # TCG: everything QEMU emulates but ERMS (see unik_vmimage.qemu.TCG_CPU)
                cpu = ET.SubElement(root, "cpu", mode="maximum", check="none")
                ET.SubElement(cpu, "feature", policy="disable", name="erms")
        ET.SubElement(root, "clock", offset="utc")
        # The init powers the VM off when the application ends: no restarts.
        ET.SubElement(root, "on_poweroff").text = "destroy"
        ET.SubElement(root, "on_reboot").text = "destroy"
        ET.SubElement(root, "on_crash").text = self.on_crash
        devices = ET.SubElement(root, "devices")
        for disk in self.disks:
            _disk(devices, disk)
        for nic in self.interfaces:
            _interface(devices, nic)
        if xen:
            console = ET.SubElement(devices, "console", type="pty")
            ET.SubElement(console, "target", type="xen", port="0")
        else:
            serial = ET.SubElement(devices, "serial", type="pty")
            if self.console_log is not None:
                ET.SubElement(serial, "log", file=self.console_log, append="on")
            ET.SubElement(serial, "target", port="0")
            console = ET.SubElement(devices, "console", type="pty")
            ET.SubElement(console, "target", type="serial", port="0")
            rng = ET.SubElement(devices, "rng", model="virtio")
            ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
            ET.SubElement(devices, "memballoon", model="none")
        ET.indent(root)
        return ET.tostring(root, encoding="unicode") + "\n"

    # -- reading ------------------------------------------------------------------------

    @classmethod
    def from_xml(cls, text: str) -> Domain:
        """Read a domain unik wrote; anything else in it (an element, an attribute) is a :class:`BuildError`."""
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise _fail(f"not XML: {exc}") from None
        reader = _Reader()
        reader.element(root, "domain", {"type"})
        kind = root.get("type", "")
        xen = kind == "xen"
        os_ = reader.child(root, "os", set())
        reader.child(os_, "type", {"arch", "machine"})
        boot = DirectBoot(reader.text(os_, "kernel"), reader.text(os_, "initrd"), reader.text(os_, "cmdline"))
        memory = reader.child(root, "memory", {"unit"})
        if memory.get("unit") != "MiB":
            raise _fail("memory is not in MiB")
        if not xen:
            reader.child(reader.child(root, "features", set()), "acpi", set())
            cpu = reader.child(root, "cpu", {"mode", "check"})
            for feature in cpu:
                reader.element(feature, "feature", {"policy", "name"})
        reader.child(root, "clock", {"offset"})
        for name in ("on_poweroff", "on_reboot"):
            reader.text(root, name)
        devices = reader.child(root, "devices", set())
        disks, nics, log = [], [], None
        for dev in devices:
            if dev.tag == "disk":
                disks.append(_read_disk(reader, dev))
            elif dev.tag == "interface":
                nics.append(_read_interface(reader, dev))
            elif dev.tag == "serial" and not xen:
                reader.element(dev, "serial", {"type"})
                for part in dev:
                    if part.tag not in ("log", "target"):
                        raise _fail(f"<serial> has an element <{part.tag}> unik does not write")
                    reader.element(part, part.tag, {"file", "append"} if part.tag == "log" else {"port"})
                    if part.tag == "log":
                        log = part.get("file")
            elif dev.tag == "console":
                reader.element(dev, "console", {"type"})
                reader.child(dev, "target", {"type", "port"})
            elif dev.tag == "rng" and not xen:
                reader.element(dev, "rng", {"model"})
                reader.child(dev, "backend", {"model"})
            elif dev.tag == "memballoon" and not xen:
                reader.element(dev, "memballoon", {"model"})
            else:
                raise _fail(f"<devices> has an element <{dev.tag}> unik does not write")
        name, vcpus, on_crash = reader.text(root, "name"), reader.text(root, "vcpu"), reader.text(root, "on_crash")
        reader.done(root)
        return cls(type=kind, name=name, memory_mib=_int(memory.text, "memory"), vcpus=_int(vcpus, "vcpu"),
                   boot=boot, disks=tuple(disks), interfaces=tuple(nics), console_log=log, on_crash=on_crash)


def _twice(values: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    out: set[str] = set()
    for v in values:
        (out if v in seen else seen).add(v)
    return out


def _disk(devices: ET.Element, disk: Disk) -> None:
    element = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(element, "driver", name="qemu", type="raw", cache="writeback")
    ET.SubElement(element, "source", file=disk.source)
    ET.SubElement(element, "target", dev=disk.target, bus=disk.bus)
    if disk.sector_size is not None:
        ET.SubElement(element, "blockio", logical_block_size=str(disk.sector_size),
                      physical_block_size=str(disk.sector_size))
    ET.SubElement(element, "serial").text = disk.serial
    if disk.read_only:
        ET.SubElement(element, "readonly")


def _interface(devices: ET.Element, nic: Interface) -> None:
    element = ET.SubElement(devices, "interface", type=nic.type)
    ET.SubElement(element, "mac", address=nic.mac)
    if nic.type in ("network", "bridge"):
        ET.SubElement(element, "source", {nic.type: str(nic.source)})
    elif nic.type == "ethernet":
        ET.SubElement(element, "target", dev=str(nic.source), managed="no")  # an existing TAP, left as it is
    if nic.model is not None:
        ET.SubElement(element, "model", type=nic.model)
        driver = ET.SubElement(element, "driver")
        ET.SubElement(driver, "guest", csum="off", tso4="off", tso6="off", ecn="off", ufo="off")


def _read_disk(reader: _Reader, dev: ET.Element) -> Disk:
    reader.element(dev, "disk", {"type", "device"})
    reader.child(dev, "driver", {"name", "type", "cache"})
    target = reader.child(dev, "target", {"dev", "bus"})
    blockio = dev.find("blockio")
    size = None
    if blockio is not None:
        reader.element(blockio, "blockio", {"logical_block_size", "physical_block_size"})
        size = _int(blockio.get("logical_block_size"), "blockio")
    readonly = dev.find("readonly")
    if readonly is not None:
        reader.element(readonly, "readonly", set())
    return Disk(serial=reader.text(dev, "serial"), source=reader.child(dev, "source", {"file"}).get("file", ""),
                target=target.get("dev", ""), bus=target.get("bus", ""), read_only=readonly is not None,
                sector_size=size)


def _read_interface(reader: _Reader, dev: ET.Element) -> Interface:
    reader.element(dev, "interface", {"type"})
    kind = dev.get("type", "")
    source = None
    if kind in ("network", "bridge"):
        source = reader.child(dev, "source", {kind}).get(kind)
    elif kind == "ethernet":
        source = reader.child(dev, "target", {"dev", "managed"}).get("dev")
    model = dev.find("model")
    if model is not None:
        reader.element(model, "model", {"type"})
        reader.child(reader.child(dev, "driver", set()), "guest", {"csum", "tso4", "tso6", "ecn", "ufo"})
    return Interface(mac=reader.child(dev, "mac", {"address"}).get("address", ""), type=kind, source=source,
                     model=model.get("type") if model is not None else None)


def _int(text: str | None, what: str) -> int:
    try:
        return int(text or "")
    except ValueError:
        raise _fail(f"<{what}> is {text!r}, not an integer") from None


class _Reader:
    """Checks elements against what unik writes, and that every element was looked at."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def element(self, element: ET.Element, tag: str, attributes: set[str]) -> None:
        if element.tag != tag:
            raise _fail(f"<{element.tag}> where unik writes <{tag}>")
        unknown = sorted(set(element.attrib) - attributes)
        if unknown:
            raise _fail(f"<{tag}> has an attribute {unknown[0]!r} unik does not write")
        self.seen.add(id(element))

    def child(self, parent: ET.Element, tag: str, attributes: set[str]) -> ET.Element:
        found = parent.findall(tag)
        if len(found) != 1:
            raise _fail(f"<{parent.tag}> has {len(found)} <{tag}> elements, not one")
        self.element(found[0], tag, attributes)
        return found[0]

    def text(self, parent: ET.Element, tag: str) -> str:
        return (self.child(parent, tag, set()).text or "").strip()

    def done(self, root: ET.Element) -> None:
        for element in root.iter():
            if id(element) not in self.seen:
                raise _fail(f"<{element.tag}> in <{root.tag}> is not an element unik writes")


def host_side(device: str, given: str | None, mac: str, default_network: str = "default") -> Interface:
    """NIC ``device`` with ``mac``, on the host side ``--net DEVICE=...`` names.

    ``network:NAME`` is a libvirt network, ``bridge:NAME`` a bridge, ``user`` QEMU's
    user network, another name an existing TAP; nothing (or ``auto``) is libvirt's
    ``default`` network.
    """
    value = given if given not in (None, "", "auto") else f"network:{default_network}"
    assert value is not None
    kind, sep, name = value.partition(":")
    if sep and kind in ("network", "bridge"):
        if not name:
            raise _fail(f"--net {device}={value}: name the {kind} ({kind}:NAME)")
        return Interface(mac, kind, name)
    if value == "user":
        return Interface(mac, "user")
    if not re.fullmatch(r"[\w.-]{1,15}", value):
        raise _fail(f"--net {device}={value}: give network:NAME, bridge:NAME, user or a TAP's name")
    return Interface(mac, "ethernet", value)
