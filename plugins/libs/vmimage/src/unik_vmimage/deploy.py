"""``unik deploy``: a VM image handed to libvirt as a domain, and the life cycle of deployed domains.

``unik deploy [--connect URI]`` builds the project's VM artifact if it is stale, names
an instance (``unik ps``), renders the target's libvirt domain for it — its own MACs,
``--net``/``--block``/``--mem``, the console logged to the instance's ``console.log``
— and defines and starts it through libvirt's Python binding (``libvirt-python``).
The domain then belongs to libvirt: no unik process stays behind.  The instance's
record names :class:`LibvirtEngine`, through which ``unik ps``, ``logs``, ``stop`` (the
ACPI power button, ``virDomainShutdownFlags(ACPI_POWER_BTN)``, then ``destroy`` after the
timeout) and ``rm`` (``undefine``) work on it as on a local run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unik.errors import RunError, UnikError
from unik.instances import LOG, Instance, InstanceError, Registry, boot_id

from .keys import nic_macs

if TYPE_CHECKING:
    from unik.project import Project

    from .libvirt_xml import Domain

#: Where each target's domains go when ``--connect`` and ``LIBVIRT_DEFAULT_URI`` are not given.
DEFAULT_URIS = {"virtio": "qemu:///system", "xen": "xen:///system"}
ENGINE = "unik_vmimage.deploy:LibvirtEngine"
_STATUS = re.compile(rb"unik-init: exit status (\d+)")
_LIBVIRT_MISSING = ("libvirt's Python binding is not installed: pip install 'unik-lib-vmimage[libvirt]' "
                    "(it builds against the host's libvirt: apt-get install libvirt-dev pkg-config)")


def libvirt_module() -> Any:
    """The ``libvirt`` module, its default error printer silenced (its errors are raised, and said once)."""
    try:
        import libvirt  # type: ignore[import-untyped]
    except ImportError:
        raise RunError(_LIBVIRT_MISSING) from None
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def connect(uri: str) -> Any:
    """A connection to the libvirt daemon at ``uri``, or a :class:`RunError` saying how to reach one."""
    libvirt = libvirt_module()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise RunError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()} (is libvirtd running? "
                       "give another with --connect URI)") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``unik deploy``."""
    p = subparsers.add_parser(
        "deploy", help="define and start the VM image as a libvirt domain (virtio, xen)",
        description="Build the project's VM artifact if needed, and define and start it as a libvirt domain "
        "named after the instance (unik ps, logs, stop and rm then work on it). Arguments after -- go to the "
        "application, as with unik run.")
    p.add_argument("-t", "--target", help="the target (default: the one configured last)")
    p.add_argument("--connect", metavar="URI", help="libvirt URI (default: $LIBVIRT_DEFAULT_URI, else "
                   "qemu:///system for virtio and xen:///system for xen)")
    p.add_argument("--name", help="the instance's and the domain's name (default: the application's, made unique)")
    p.add_argument("--net", action="append", default=[], metavar="DEVICE=HOST",
                   help="a NIC's host side: network:NAME (a libvirt network), bridge:NAME, a TAP's name, or user "
                   "(default: the configured --net, else libvirt's network 'default'; xen: a bridge)")
    p.add_argument("--net-mac", action="append", default=[], metavar="DEVICE=MAC",
                   help="a NIC's MAC (default: the instance's own, derived from its name)")
    p.add_argument("--block", action="append", default=[], metavar="DEVICE=FILE", help="a disk's image file")
    p.add_argument("--mem", metavar="SIZE", help="memory in MiB, or with a unit (256M, 1G)")
    p.add_argument("--domain-type", choices=("kvm", "qemu"),
                   help="virtio: kvm or qemu (TCG); default kvm where KVM boots the kernel here, else qemu")
    p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_deploy)


def _bindings(option: str, given: list[str], configured: dict[str, str]) -> dict[str, str]:
    out = dict(configured)
    for text in given:
        device, sep, value = text.partition("=")
        if not sep or not device or not value:
            raise UnikError(f"--{option} {text!r}: give DEVICE=VALUE")
        out[device] = value
    return out


def _artifact_dir(project: Project, target: str | None) -> tuple[Path, str]:
    """The artifact's directory, built first when missing or stale, and its target."""
    from unik.errors import NotConfigured
    from unik.target import Artifact

    config = project.configuration(target)
    directory = project.artifact_dir(config.plan)
    try:
        fresh = Artifact.load(directory).manifest.get("inputs") == project.inputs_digest(config)
    except NotConfigured:
        fresh = False
    if not fresh:
        directory = project.build(config.plan.target).directory
    return directory, config.plan.target


def cmd_deploy(ns: argparse.Namespace) -> int:
    """``unik deploy``."""
    from unik.project import Project
    from unik.target import Artifact

    from .target import InstanceSpec, VmTarget

    libvirt = libvirt_module()  # before any work: the binding is there
    project = Project.find(Path(ns.project or "."), ns.pm, ns.progress)
    directory, target = _artifact_dir(project, ns.target)
    vm = ns.pm.target(target)
    if not isinstance(vm, VmTarget):
        raise UnikError(f"unik deploy hands VM images to libvirt: target {target!r} is not a VM target "
                        "(configure -t virtio or -t xen)")
    artifact = Artifact.load(directory)
    plan_keys = project.configuration(target).plan.keys

    def configured(name: str) -> dict[str, str]:
        return plan_keys.bindings(name) if name in plan_keys.keys else {}

    uri = ns.connect or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URIS.get(target, "qemu:///system")
    registry = Registry()
    slot = registry.reserve(ns.name, artifact.manifest.get("name") or directory.name.rsplit("-", 1)[0])
    name = slot.name
    try:
        blocks = {d: str(Path(f).expanduser().resolve()) for d, f in _bindings("block", ns.block, {}).items()}
        macs = nic_macs(artifact.manifest["devices"], name, _bindings("net-mac", ns.net_mac, configured("net_mac")))
        spec = InstanceSpec(name=name, macs=macs, nets=_bindings("net", ns.net, configured("net")),
                            blocks={**configured("block"), **blocks}, mem=ns.mem, domain_type=ns.domain_type,
                            console_log=str(slot / LOG) if target != "xen" else None, root=project.root)
        domain = _with_args(vm.libvirt_domain(directory, artifact.manifest, spec, ns.progress), ns.args)
        conn = connect(uri)
        try:
            conn.lookupByName(name)
            raise RunError(f"{uri} has a domain named {name} already: choose another --name "
                           f"(or remove it: virsh -c {uri} undefine {name})")
        except libvirt.libvirtError:
            pass  # no such domain: the name is free
        try:
            dom = conn.defineXML(domain.to_xml())
        except libvirt.libvirtError as exc:
            raise RunError(f"libvirt refused the domain {name}: {exc.get_error_message()}") from None
        try:
            dom.create()
        except libvirt.libvirtError as exc:
            dom.undefine()
            raise RunError(f"libvirt could not start the domain {name}: {exc.get_error_message()}") from None
    except BaseException:
        registry.remove(name)
        raise
    registry.write(Instance(
        name=name, app=directory.name.rsplit("-", 1)[0], target=target, project=str(project.root),
        artifact=str(directory), detached=True, started=time.time(), boot_id=boot_id(),
        state="running", options={"connect": [uri]}, addresses=_addresses(ns.args), engine=ENGINE,
        details={"domain": name, "uri": uri, "uuid": dom.UUIDString(), "domain_type": domain.type, "macs": macs}))
    print(name, flush=True)
    how = f"unik logs -f {name}; " if target != "xen" else f"virsh -c {uri} console {name}; "
    ns.progress.info(f"{name} is deployed to {uri} as a {domain.type} domain: {how}unik stop {name}")
    return 0


def _addresses(args: list[str]) -> list[str]:
    """The ``--ipv4`` the application's arguments give, for ``unik ps``."""
    out = [a.split("=", 1)[1] for a in args if a.startswith("--ipv4=")]
    out += [b for a, b in itertools.pairwise(args) if a == "--ipv4"]
    return out


def _with_args(domain: Domain, args: list[str]) -> Domain:
    """``domain`` with the application's arguments after the MACs on its kernel command line."""
    from dataclasses import replace

    from .libvirt_xml import DirectBoot

    if not args:
        return domain
    for arg in args:
        if any(c in arg for c in '"\n\0') or not arg:
            raise UnikError(f"argument {arg!r} cannot travel on the kernel command line")
    quoted = [f'"{a}"' if " " in a else a for a in args]
    cmdline = domain.boot.cmdline + (" " if " -- " in domain.boot.cmdline else " -- ") + " ".join(quoted)
    return replace(domain, boot=DirectBoot(domain.boot.kernel, domain.boot.initrd, cmdline))


class LibvirtEngine:
    """Deployed domains for ``unik ps``, ``stop`` and ``rm`` (an :class:`unik.instances.Engine`)."""

    def _domain(self, instance: Instance) -> Any:
        libvirt = libvirt_module()
        conn = connect(instance.details["uri"])
        try:
            return conn.lookupByUUIDString(instance.details["uuid"])
        except libvirt.libvirtError:
            return None

    def running(self, instance: Instance) -> bool:
        """Whether libvirt runs the domain."""
        dom = self._domain(instance)
        return bool(dom is not None and dom.isActive())

    def status(self, instance: Instance) -> int | None:
        """The exit status the guest's init printed on the console (``unik_exit=poweroff``)."""
        log = Path(instance.directory) / LOG
        try:
            found = _STATUS.findall(log.read_bytes())
        except OSError:
            return None
        return int(found[-1]) if found else None

    def stop(self, instance: Instance, timeout: float) -> str:
        """Press the domain's ACPI power button; destroy it if it is still running after ``timeout`` seconds."""
        libvirt = libvirt_module()
        dom = self._domain(instance)
        if dom is None or not dom.isActive():
            return f"{instance.name} is not running"
        try:
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        except libvirt.libvirtError as exc:
            print(f"unik: the power button of {instance.name} could not be pressed ({exc.get_error_message()})",
                  file=sys.stderr)
        deadline = time.monotonic() + timeout
        while dom.isActive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not dom.isActive():
            return f"{instance.name} stopped"
        self.kill(instance)
        return f"{instance.name} did not stop within {timeout:g} s: destroyed"

    def kill(self, instance: Instance) -> None:
        """Destroy the domain (libvirt's hard power-off)."""
        libvirt = libvirt_module()
        dom = self._domain(instance)
        if dom is not None and dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                raise InstanceError(f"libvirt could not destroy {instance.name}: {exc.get_error_message()}") from None

    def forget(self, instance: Instance) -> None:
        """Undefine the domain (its image and disks stay)."""
        libvirt = libvirt_module()
        dom = self._domain(instance)
        if dom is not None:
            try:
                dom.undefine()
            except libvirt.libvirtError as exc:
                raise InstanceError(f"libvirt could not undefine {instance.name}: "
                                    f"{exc.get_error_message()}") from None
