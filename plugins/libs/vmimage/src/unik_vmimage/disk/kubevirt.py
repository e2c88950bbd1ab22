"""``<name>.kubevirt.yaml``: a KubeVirt ``VirtualMachine`` booting the OCI image's kernel, as typed records.

One record per object of KubeVirt's ``kubevirt.io/v1`` API that the manifest uses, with
KubeVirt's field names (:meth:`VirtualMachine.to_json`), rendered to YAML by
:func:`to_yaml` (block style, every string double-quoted: no YAML library needed to
write it, and nothing in a value is read as another type).

The VM boots by ``kernelBoot``: KubeVirt's launcher takes ``kernelPath`` and
``initrdPath`` out of the container image and starts QEMU with them and
``kernelArgs`` (the image's command line, the NIC's MAC included); the same image is
also a containerDisk (``/disk/``) for a UEFI boot.  Resources come from the plan
(``--mem`` in MiB, one vCPU as ``unik run`` gives); the pod network is reached through
a masquerade interface (KubeVirt's DHCP gives the guest its address: configure without
``--ipv4``) that forwards the application's ports, and the readiness probe connects to
the first of them.  A virtio-rng device gives the guest its boot seed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unik.errors import BuildError

API_VERSION = "kubevirt.io/v1"
NAME_LABEL = "app.kubernetes.io/name"
#: A Kubernetes object name (RFC 1123 label) and a port name (IANA service name).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?")


@dataclass(frozen=True)
class Port:
    """One of an interface's ``ports``: forwarded from the pod to the guest."""

    name: str
    port: int
    protocol: str = "TCP"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise BuildError(f"kubevirt: port {self.port} is not within 1..65535")
        if not _PORT_NAME.fullmatch(self.name) or not re.search("[a-z]", self.name):
            raise BuildError(f"kubevirt: port name {self.name!r} is not an IANA service name "
                             "(at most 15 lower-case letters, digits and '-')")
        if self.protocol not in ("TCP", "UDP"):
            raise BuildError(f"kubevirt: protocol {self.protocol!r} is not TCP or UDP")

    def to_json(self) -> dict[str, Any]:
        """``{name, port, protocol}``."""
        return {"name": self.name, "port": self.port, "protocol": self.protocol}


@dataclass(frozen=True)
class Interface:
    """One of ``domain.devices.interfaces``: a virtio NIC bound to the pod network by masquerade."""

    name: str
    #: The address the image's command line names (``--net-mac``); ``None``: KubeVirt chooses one.
    mac_address: str | None
    ports: tuple[Port, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """``{name, masquerade: {}, macAddress, model, ports}`` (``macAddress`` only when the image names one)."""
        out: dict[str, Any] = {"name": self.name, "masquerade": {}, "model": "virtio"}
        if self.mac_address is not None:
            out["macAddress"] = self.mac_address
        if self.ports:
            out["ports"] = [p.to_json() for p in self.ports]
        return out


@dataclass(frozen=True)
class KernelBoot:
    """``domain.firmware.kernelBoot``: the kernel and initramfs in a container image, and the command line."""

    image: str
    kernel_path: str
    initrd_path: str
    kernel_args: str
    image_pull_policy: str = "IfNotPresent"

    def to_json(self) -> dict[str, Any]:
        """``{kernelArgs, container: {image, kernelPath, initrdPath, imagePullPolicy}}``."""
        return {"kernelArgs": self.kernel_args,
                "container": {"image": self.image, "kernelPath": self.kernel_path, "initrdPath": self.initrd_path,
                              "imagePullPolicy": self.image_pull_policy}}


@dataclass(frozen=True)
class TcpProbe:
    """A ``readinessProbe`` that connects to a port of the guest."""

    port: int
    initial_delay_seconds: int = 5
    period_seconds: int = 5
    timeout_seconds: int = 2
    failure_threshold: int = 12

    def to_json(self) -> dict[str, Any]:
        """``{tcpSocket: {port}, initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold}``."""
        return {"tcpSocket": {"port": self.port}, "initialDelaySeconds": self.initial_delay_seconds,
                "periodSeconds": self.period_seconds, "timeoutSeconds": self.timeout_seconds,
                "failureThreshold": self.failure_threshold}


@dataclass(frozen=True)
class VirtualMachine:
    """A ``VirtualMachine`` that runs always, booting :class:`KernelBoot`."""

    name: str
    memory_mib: int
    kernel_boot: KernelBoot
    interfaces: tuple[Interface, ...] = ()
    cores: int = 1
    readiness: TcpProbe | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _DNS_LABEL.fullmatch(self.name):
            raise BuildError(f"kubevirt: {self.name!r} is not a Kubernetes object name (lower-case letters, "
                             "digits and '-', at most 63): rename the application or edit the manifest")
        if self.memory_mib < 1 or self.cores < 1:
            raise BuildError(f"kubevirt: {self.memory_mib} MiB and {self.cores} cores is not a VM")

    def to_json(self) -> dict[str, Any]:
        """The object as ``kubectl apply`` reads it."""
        labels = {NAME_LABEL: self.name, **self.labels}
        domain: dict[str, Any] = {
            "cpu": {"cores": self.cores},
            "resources": {"requests": {"memory": f"{self.memory_mib}Mi"}},
            "firmware": {"kernelBoot": self.kernel_boot.to_json()},
            "devices": {"rng": {}, "interfaces": [i.to_json() for i in self.interfaces]},
        }
        if not self.interfaces:
            domain["devices"]["autoattachPodInterface"] = False  # no NIC: KubeVirt would add one
        spec: dict[str, Any] = {
            "domain": domain,
            "networks": [{"name": i.name, "pod": {}} for i in self.interfaces],
            "terminationGracePeriodSeconds": 30,
        }
        if self.readiness is not None:
            spec["readinessProbe"] = self.readiness.to_json()
        return {"apiVersion": API_VERSION, "kind": "VirtualMachine",
                "metadata": {"name": self.name, "labels": labels},
                "spec": {"runStrategy": "Always", "template": {"metadata": {"labels": labels}, "spec": spec}}}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    raise BuildError(f"kubevirt: cannot write {value!r} as YAML")


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, (Mapping, list)) and item:
                out.append(f"{pad}{key}:")
                out += _lines(item, indent + 2)
            else:
                out.append(f"{pad}{key}: {'{}' if item == {} else '[]' if item == [] else _scalar(item)}")
    else:
        for item in value:
            inner = _lines(item, indent + 2) if isinstance(item, (Mapping, list)) else [pad + "  " + _scalar(item)]
            out.append(pad + "- " + inner[0].lstrip())
            out += inner[1:]
    return out


def to_yaml(document: Mapping[str, Any], comment: Sequence[str] = ()) -> str:
    """``document`` as block-style YAML, after ``comment`` lines."""
    return "".join(f"# {line}\n" for line in comment) + "\n".join(_lines(document, 0)) + "\n"


def port_name(key: str) -> str:
    """A key's name as a port name: ``admin_port`` -> ``admin-port``, at most 15 characters."""
    return key.replace("_", "-")[:15].strip("-")


def virtual_machine(name: str, image: str, oci: Mapping[str, Any], memory_mib: int,
                    macs: Mapping[str, str | None], ports: Mapping[str, int]) -> VirtualMachine:
    """The VM of an image: the layout's kernel paths and command line, its NICs and the application's ports.

    ``macs``: each network device's MAC as the image's command line names it, ``None``
    where it names none (one NIC: the guest takes the only one, whatever its address).
    """
    if len(macs) > 1:
        raise BuildError(f"kubevirt: the application has {len(macs)} network devices ({', '.join(macs)}), and a "
                         "VirtualMachine gets one pod network: build the OCI image without the kubevirt manifest's "
                         "help, or give the application one network device")
    port_records = tuple(Port(port_name(key), number) for key, number in ports.items())
    interfaces = tuple(Interface("default", mac, port_records) for mac in macs.values())
    probe = TcpProbe(next(iter(ports.values()))) if ports and interfaces else None
    return VirtualMachine(
        name=name.lower().replace("_", "-"), memory_mib=memory_mib,
        kernel_boot=KernelBoot(image=image, kernel_path=oci["kernel_path"], initrd_path=oci["initrd_path"],
                               kernel_args=oci["kernel_args"]),
        interfaces=interfaces, readiness=probe)


#: The image reference the manifest names before ``unik push`` pins the pushed one.
UNPUSHED = "REGISTRY/{name}:latest"


def render(name: str, images: Mapping[str, Any], image: str | None = None) -> str:
    """The YAML of the image's VM from the manifest's ``images`` entries (``image``: the pushed reference)."""
    kube = images["kubevirt"]
    macs = {nic: images["macs"].get(nic) for nic in images.get("nics", images["macs"])}
    vm = virtual_machine(name, image or UNPUSHED.format(name=name), images["oci"], kube["memory_mib"],
                         macs, kube["ports"])
    named = ["The NIC's macAddress is the one kernelArgs gives the guest (--net-mac): change both together."]
    comment = [f"KubeVirt VirtualMachine for {name}, written by unik build (--image oci).",
               *(named if any(macs.values()) else []),
               "kubectl apply -f this file after `unik push REF`, which names the pushed image@digest here."]
    if image is None:
        comment.append("Not pushed yet: kernelBoot.container.image is a placeholder.")
    return to_yaml(vm.to_json(), comment)
