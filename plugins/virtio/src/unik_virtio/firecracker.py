"""Firecracker's VM configuration (``firecracker --no-api --config-file firecracker.json``) as typed records.

One record per section of Firecracker's configuration file, with Firecracker's own
field names and types (its ``vmm_config`` structures, which are deserialised with
``deny_unknown_fields``): :meth:`FirecrackerConfig.to_json` writes exactly those
fields, and :meth:`FirecrackerConfig.from_json` reads a configuration back, refusing an
unknown section or field, a missing required one or a value of the wrong type with a
:class:`~unik.errors.BuildError` naming it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from unik.errors import BuildError

_R = TypeVar("_R", bound="_Record")


def _type_name(kind: Any) -> str:
    return " or ".join(getattr(k, "__name__", str(k)) for k in typing.get_args(kind)) or kind.__name__


class _Record:
    """A section: its fields are its attributes, named as Firecracker names them."""

    def to_json(self) -> dict[str, Any]:
        """The section as Firecracker reads it."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[_R], data: Any, where: str) -> _R:
        """Read the section; an unknown or missing field, or a wrong type, is a :class:`BuildError`."""
        if not isinstance(data, Mapping):
            raise BuildError(f"firecracker configuration: {where} is not an object")
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise BuildError(f"firecracker configuration: {where} has no field {unknown[0]!r} "
                             f"(fields: {', '.join(names)})")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for json_name, f in names.items():
            if json_name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise BuildError(f"firecracker configuration: {where} lacks the field {json_name!r}")
                continue
            value, kind = data[json_name], hints[f.name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise BuildError(f"firecracker configuration: {where}.{json_name} is {value!r}, "
                                 f"not a {_type_name(kind)}")
            values[f.name] = value
        return cls(**values)


@dataclass(frozen=True)
class BootSource(_Record):
    """``boot-source``: the ELF kernel, the initramfs and the kernel command line."""

    kernel_image_path: str
    initrd_path: str | None = None
    boot_args: str | None = None


@dataclass(frozen=True)
class Drive(_Record):
    """One of ``drives``: a host file as a virtio-blk disk (found in the guest by its ``drive_id``)."""

    CACHE_TYPES: ClassVar[tuple[str, ...]] = ("Unsafe", "Writeback")

    drive_id: str
    path_on_host: str
    is_root_device: bool
    is_read_only: bool = False
    cache_type: str = "Unsafe"

    def __post_init__(self) -> None:
        if self.cache_type not in self.CACHE_TYPES:
            raise BuildError(f"firecracker drive {self.drive_id}: cache_type {self.cache_type!r} is not one of "
                             f"{', '.join(self.CACHE_TYPES)}")


@dataclass(frozen=True)
class NetworkInterface(_Record):
    """One of ``network-interfaces``: a host TAP and the guest's MAC address."""

    iface_id: str
    host_dev_name: str
    guest_mac: str | None = None


@dataclass(frozen=True)
class MachineConfig(_Record):
    """``machine-config``: vCPUs and memory."""

    vcpu_count: int
    mem_size_mib: int
    smt: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.vcpu_count <= 32:
            raise BuildError(f"firecracker machine-config: vcpu_count {self.vcpu_count} is not within 1..32")
        if self.mem_size_mib < 1:
            raise BuildError(f"firecracker machine-config: mem_size_mib {self.mem_size_mib} is not positive")


@dataclass(frozen=True)
class Entropy(_Record):
    """``entropy``: a virtio-rng device (the host's randomness), with no rate limiter."""


@dataclass(frozen=True)
class FirecrackerConfig:
    """A whole configuration file: one record per section."""

    boot_source: BootSource
    machine_config: MachineConfig
    drives: tuple[Drive, ...] = ()
    network_interfaces: tuple[NetworkInterface, ...] = ()
    entropy: Entropy | None = field(default_factory=Entropy)

    def __post_init__(self) -> None:
        ids = [d.drive_id for d in self.drives] + [n.iface_id for n in self.network_interfaces]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise BuildError(f"firecracker configuration: {twice[0]!r} names two devices")

    def to_json(self) -> dict[str, Any]:
        """The configuration file's object."""
        out: dict[str, Any] = {
            "boot-source": self.boot_source.to_json(),
            "drives": [d.to_json() for d in self.drives],
            "machine-config": self.machine_config.to_json(),
            "network-interfaces": [n.to_json() for n in self.network_interfaces],
        }
        if self.entropy is not None:
            out["entropy"] = self.entropy.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any) -> FirecrackerConfig:
        """Read a configuration file's object; unknown sections and fields are refused."""
        if not isinstance(data, Mapping):
            raise BuildError("firecracker configuration: not a JSON object")
        sections = ("boot-source", "drives", "machine-config", "network-interfaces", "entropy")
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise BuildError(f"firecracker configuration: unknown section {unknown[0]!r} (sections: "
                             f"{', '.join(sections)})")
        for required in ("boot-source", "machine-config"):
            if required not in data:
                raise BuildError(f"firecracker configuration: the section {required!r} is missing")
        lists = {}
        for name in ("drives", "network-interfaces"):
            items = data.get(name, [])
            if not isinstance(items, list):
                raise BuildError(f"firecracker configuration: {name} is not a list")
            lists[name] = items
        return cls(
            boot_source=BootSource.from_json(data["boot-source"], "boot-source"),
            machine_config=MachineConfig.from_json(data["machine-config"], "machine-config"),
            drives=tuple(Drive.from_json(d, f"drives[{i}]") for i, d in enumerate(lists["drives"])),
            network_interfaces=tuple(NetworkInterface.from_json(n, f"network-interfaces[{i}]")
                                     for i, n in enumerate(lists["network-interfaces"])),
            entropy=Entropy.from_json(data["entropy"], "entropy") if "entropy" in data else None,
        )
