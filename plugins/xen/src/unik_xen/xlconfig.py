"""The ``xl`` domain configuration of a unik guest, as typed records.

:class:`DomainConfig`, :class:`Vif` and :class:`Disk` are frozen records of exactly the
settings unik writes; each checks its values when it is made (a guest type xl knows, a
MAC address, a bridge's interface name, a virtual disk name, strings xl can quote), so
a configuration that exists can be written.  They are written in xl's configuration
syntax (``xl.cfg(5)``): ``name = "value"`` settings, integers, and lists of strings for
``vif`` and ``disk``.  Paths of the kernel and the
initramfs are relative to the configuration's directory (the emitter's output), so the
file is run from there — ``cd dist/hello-xen && xl create -c hello.xl`` — or rewritten
by ``unik run -t xen`` with absolute paths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from unik.errors import BuildError
from unik_vmimage.memory import BASE_MIB, parse_mib


def mem_mib(size: str) -> int:
    """``--mem`` as MiB (xl's ``memory`` unit): a plain number is MiB, as on every target."""
    try:
        mib = parse_mib(size)
    except ValueError as exc:
        raise BuildError(f"--mem {exc}") from None
    if mib < BASE_MIB:
        raise BuildError(f"--mem {size}: a guest of unik's needs at least {BASE_MIB} MiB for its kernel, plus its "
                         f"initramfs (unik run says how much an image needs)")
    return mib


def _string(value: str) -> str:
    """An xl string: double quotes, with backslashes and double quotes escaped (xl's lexer undoes both)."""
    if any(c in value for c in "\n\0"):
        raise BuildError(f"{value!r} cannot be written as an xl string (newlines, NUL)")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: xl's guest types, and what it may do when a guest crashes and with its TSC.
GUEST_TYPES = ("pvh", "pv")
ON_CRASH = ("destroy", "preserve", "restart", "coredump-destroy", "coredump-restart")
TSC_MODES = ("native", "default", "always_emulate")


@dataclass(frozen=True)
class Vif:
    """One ``vif`` entry: the guest's MAC on a bridge of the control domain."""

    mac: str
    bridge: str = "xenbr0"

    def __post_init__(self) -> None:
        mac_ok = re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", self.mac)
        if not mac_ok or not re.fullmatch(r"[\w.-]{1,15}", self.bridge):
            raise BuildError(f"vif mac={self.mac} bridge={self.bridge}: not a MAC address and an interface name")

    def spec(self) -> str:
        """The entry (``mac=...,bridge=...``)."""
        return f"mac={self.mac},bridge={self.bridge},type=vif"


@dataclass(frozen=True)
class Disk:
    """One ``disk`` entry: a raw file of the control domain as a Xen virtual disk."""

    vdev: str
    target: str
    read_only: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"xvd[a-z]+", self.vdev):
            raise BuildError(f"disk vdev={self.vdev!r}: not a Xen virtual disk name (xvda, xvdb, ...)")
        if not self.target:
            raise BuildError(f"disk {self.vdev}: no target file")

    def spec(self) -> str:
        """The entry; ``target=`` comes last, as xl-disk-configuration(5) allows commas in it.

        ``script=block`` has dom0 attach the file through a loop device for blkback (the
        ``phy`` backend), so no device model (QEMU's ``qdisk``) is needed in dom0.
        """
        access = "ro" if self.read_only else "rw"
        return f"format=raw,vdev={self.vdev},access={access},backendtype=phy,script=block,target={self.target}"


@dataclass(frozen=True)
class DomainConfig:
    """Everything ``<name>.xl`` says."""

    name: str
    type: str
    kernel: str
    ramdisk: str
    memory_mib: int
    cmdline: str
    vcpus: int = 1
    vifs: Sequence[Vif] = field(default_factory=list)
    disks: Sequence[Disk] = field(default_factory=list)
    on_crash: str = "destroy"
    tsc_mode: str | None = "native"

    def __post_init__(self) -> None:
        if self.type not in GUEST_TYPES:
            raise BuildError(f"xen guest type {self.type!r}: pvh or pv")
        if self.on_crash not in ON_CRASH:
            raise BuildError(f"xen on_crash {self.on_crash!r}: one of {', '.join(ON_CRASH)}")
        if self.tsc_mode is not None and self.tsc_mode not in TSC_MODES:
            raise BuildError(f"xen tsc_mode {self.tsc_mode!r}: one of {', '.join(TSC_MODES)}")
        if self.vcpus < 1 or self.memory_mib < 1:
            raise BuildError(f"xen guest {self.name}: {self.vcpus} vCPUs and {self.memory_mib} MiB cannot boot")

    def text(self) -> str:
        """The configuration file."""
        lines = [
            f"# xl domain configuration written by unik-target-xen ({self.type.upper()} guest)",
            f"name = {_string(self.name)}",
            f"type = {_string(self.type)}",
            f"kernel = {_string(self.kernel)}",
            f"ramdisk = {_string(self.ramdisk)}",
            f"cmdline = {_string(self.cmdline)}",
            f"memory = {self.memory_mib}",
            f"vcpus = {self.vcpus}",
            # The init powers the guest off when the application ends; no restarts.
            'on_poweroff = "destroy"',
            'on_reboot = "destroy"',
            f"on_crash = {_string(self.on_crash)}",
        ]
        if self.tsc_mode and self.tsc_mode != "default":
            lines.append(f"tsc_mode = {_string(self.tsc_mode)}")
        if self.vifs:
            lines.append("vif = [ " + ", ".join(_string(v.spec()) for v in self.vifs) + " ]")
        if self.disks:
            lines.append("disk = [ " + ", ".join(_string(d.spec()) for d in self.disks) + " ]")
        return "\n".join(lines) + "\n"


def vdev(index: int) -> str:
    """The ``index``-th Xen virtual disk name: xvda ... xvdz, xvdaa ..."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("a") + rem) + letters
    return f"xvd{letters}"
