"""<name>.kubevirt.yaml: the KubeVirt fields it uses, checked against a schema written from the API reference.

The schema is KubeVirt's ``kubevirt.io/v1`` reference (``VirtualMachine``,
``VirtualMachineInstanceSpec``, ``DomainSpec``, ``Firmware.kernelBoot``
(``KernelBoot``, ``KernelBootContainer``), ``Devices`` (``rng``, ``interfaces``:
``Interface`` with ``masquerade``, ``macAddress``, ``model``, ``ports``: ``Port``),
``Network.pod``, ``Probe``) restricted to what unik writes, each object closed
(``additionalProperties: false``) so that a misspelt or invented field fails.  A KubeVirt
cluster cannot run here: this, and booting the kernel as the launcher would
(tests/virtio/test_oci_push.py), is what is checked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import manifest
from unik.errors import BuildError
from unik_vmimage.disk import kubevirt

QUANTITY = r"^[0-9]+(Ki|Mi|Gi|Ti)?$"
MAC = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


EMPTY = _closed({})
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
PORT = _closed({"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "protocol": {"enum": ["TCP", "UDP"]}}, ("port",))
INTERFACE = _closed({"name": {"type": "string", "pattern": DNS_LABEL}, "masquerade": EMPTY,
                     "macAddress": {"type": "string", "pattern": MAC}, "model": {"enum": ["virtio", "e1000", "e1000e",
                                                                                           "rtl8139"]},
                     "ports": {"type": "array", "items": PORT}}, ("name",))
KERNEL_BOOT = _closed({
    "kernelArgs": {"type": "string"},
    "container": _closed({"image": {"type": "string", "minLength": 1},
                          "kernelPath": {"type": "string", "pattern": "^/"},
                          "initrdPath": {"type": "string", "pattern": "^/"},
                          "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}, ("image",)),
})
DOMAIN = _closed({
    "cpu": _closed({"cores": {"type": "integer", "minimum": 1}}),
    "resources": _closed({"requests": _closed({"memory": {"type": "string", "pattern": QUANTITY}})}),
    "firmware": _closed({"kernelBoot": KERNEL_BOOT}),
    "devices": _closed({"rng": EMPTY, "interfaces": {"type": "array", "items": INTERFACE},
                        "autoattachPodInterface": {"type": "boolean"}}),
}, ("devices",))
PROBE = _closed({"tcpSocket": _closed({"port": {"type": "integer", "minimum": 1, "maximum": 65535}}, ("port",)),
                 "initialDelaySeconds": {"type": "integer", "minimum": 0},
                 "periodSeconds": {"type": "integer", "minimum": 1},
                 "timeoutSeconds": {"type": "integer", "minimum": 1},
                 "failureThreshold": {"type": "integer", "minimum": 1}})
VMI_SPEC = _closed({"domain": DOMAIN,
                    "networks": {"type": "array", "items": _closed({"name": {"type": "string"}, "pod": EMPTY},
                                                                   ("name",))},
                    "readinessProbe": PROBE,
                    "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0}}, ("domain",))
VIRTUAL_MACHINE = _closed({
    "apiVersion": {"const": "kubevirt.io/v1"},
    "kind": {"const": "VirtualMachine"},
    "metadata": _closed({"name": {"type": "string", "pattern": DNS_LABEL, "maxLength": 63}, "labels": LABELS},
                        ("name",)),
    "spec": _closed({"runStrategy": {"enum": ["Always", "RerunOnFailure", "Manual", "Halted", "Once"]},
                     "template": _closed({"metadata": _closed({"labels": LABELS}), "spec": VMI_SPEC}, ("spec",))},
                    ("template",)),
}, ("apiVersion", "kind", "metadata", "spec"))


def _load(artifact: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((artifact / "http.kubevirt.yaml").read_text())
    return data


def test_the_manifest_follows_kubevirts_api_and_the_build(deploy_app: Path) -> None:
    artifact = deploy_app / "dist" / "http-virtio"
    vm = _load(artifact)
    jsonschema.validate(vm, VIRTUAL_MACHINE)
    info = manifest(artifact)
    images = info["images"]
    spec = vm["spec"]["template"]["spec"]
    boot = spec["domain"]["firmware"]["kernelBoot"]
    assert boot["kernelArgs"] == images["oci"]["kernel_args"] == images["cmdline"]
    assert (boot["container"]["kernelPath"], boot["container"]["initrdPath"]) == ("/boot/vmlinuz",
                                                                                   f"/boot/{info['initramfs']['file']}")
    (nic,) = spec["domain"]["devices"]["interfaces"]
    # one NIC: KubeVirt chooses its address and the guest takes it; the pod network reaches it by masquerade
    assert "macAddress" not in nic and "--net-mac" not in boot["kernelArgs"]
    assert nic["masquerade"] == {} and [n["name"] for n in spec["networks"]] == [nic["name"]]
    assert nic["ports"] == [{"name": "port", "port": 8080, "protocol": "TCP"}]
    assert spec["readinessProbe"]["tcpSocket"]["port"] == 8080
    assert spec["domain"]["resources"]["requests"]["memory"] == "256Mi"  # --mem's default, in MiB
    assert spec["domain"]["devices"]["rng"] == {}  # the boot seed: virtio-rng
    assert "unik_seed" not in boot["kernelArgs"]


def test_the_schema_refuses_what_kubevirt_would() -> None:
    vm = kubevirt.virtual_machine("demo", "r.example/demo@sha256:" + "0" * 64,
                                  {"kernel_path": "/boot/vmlinuz", "initrd_path": "/boot/i", "kernel_args": "x"},
                                  512, {"service": "02:00:00:00:00:01"}, {"port": 80}).to_json()
    jsonschema.validate(vm, VIRTUAL_MACHINE)
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["masquerad"] = {}
    with pytest.raises(jsonschema.ValidationError, match="masquerad"):
        jsonschema.validate(vm, VIRTUAL_MACHINE)


def test_yaml_round_trips_every_value_as_written() -> None:
    document = {"a": "yes", "b": "0x10", "c": 'quote " and \\ back', "d": [{"e": 1, "f": {}}, {"g": []}], "h": True}
    assert yaml.safe_load(kubevirt.to_yaml(document, ["comment"])) == document


def test_bad_values_are_refused_with_the_field_named() -> None:
    with pytest.raises(BuildError, match="not a Kubernetes object name"):
        kubevirt.VirtualMachine("My_App", 256, kubevirt.KernelBoot("i", "/k", "/i", ""))
    with pytest.raises(BuildError, match="port 70000 is not within"):
        kubevirt.Port("port", 70000)
    with pytest.raises(BuildError, match="2 network devices"):
        kubevirt.virtual_machine("demo", "i", {"kernel_path": "/k", "initrd_path": "/i", "kernel_args": ""}, 256,
                                 {"a": "02:00:00:00:00:01", "b": "02:00:00:00:00:02"}, {})
    assert kubevirt.port_name("admin_port") == "admin-port"
    assert re.fullmatch(DNS_LABEL, "http")
