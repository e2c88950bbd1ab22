"""The base of unik's VM targets: the emit pipeline written once, and what their runners share.

A VM target (virtio, xen) subclasses :class:`VmTarget` and says only what differs:

* ``providers`` — its device providers; each :class:`GuestProvider` says what its device
  needs from the image and the host (:class:`VmNeeds`);
* ``base_modules`` — the kernel modules every image of the target loads; ``cmdline`` —
  the kernel command line it boots with;
* :meth:`~VmTarget.device_record` — a device's entry in the manifest (what the runner
  attaches for it);
* :meth:`~VmTarget.image_files` — checks of the kernel, and files it adds to the image;
* :meth:`~VmTarget.finish` — the kernel file(s), the configurations for other programs
  (Firecracker's JSON, ``xl``'s), and the manifest's target-specific entries.

:meth:`VmTarget.emit` runs the pipeline in this order: find the kernel (pinned in
``unik.lock``), collect the devices' modules and mounts, add the libraries' kernel
modules and specialise the kernel (:func:`~unik_vmimage.emit.prepare_kernel`), the
target's checks and files, the initramfs (:func:`~unik_vmimage.emit.write_initramfs`),
then the target's own files.  :meth:`VmTarget.boot_qemu` boots an image under QEMU with
the console, the stop (power button, then kill) and the out-of-memory diagnosis.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from unik.errors import RunError
from unik.inventory import Content
from unik.keys import KeyValues
from unik.plan import Node, Plan
from unik.provider import Provider
from unik.target import Artifact, BuildContext, RunContext, Target, given_bindings

from . import memory, qemu
from .keys import COMPRESSION, KERNEL, KERNEL_MODULES, nic_macs

if TYPE_CHECKING:  # the image builder loads when a target emits, not when `unik run` starts
    from unik.progress import Progress

    from .initramfs import ImageReport
    from .kernels import Kernel
    from .libvirt_xml import Domain
    from .snapshot import Session


@dataclass(frozen=True)
class VmNeeds:
    """What a device needs from the image and from the host."""

    kernel_modules: tuple[str, ...] = ()
    mounts: tuple[tuple[str, str], ...] = ()
    #: What the host attaches for it: QEMU's device model family (``virtio-blk``; the bus
    #: suffix depends on the machine) or the ``xl`` configuration list (``disk``, ``vif``).
    attach: str | None = None


class GuestProvider(Provider):
    """A provider of a VM target: its device runs in the guest and may need modules, mounts, a host device."""

    vm: ClassVar[VmNeeds] = VmNeeds()


@dataclass
class ImageDevices:
    """The plan's devices as the image and the host see them."""

    modules: list[str]
    mounts: list[tuple[str, str]] = field(default_factory=list)
    #: The manifest's entries, in connect order.
    devices: list[dict[str, Any]] = field(default_factory=list)
    #: What the target's :meth:`VmTarget.image_files` found, for its :meth:`VmTarget.finish`.
    found: dict[str, Any] = field(default_factory=dict)

    def nics(self) -> int:
        """How many network devices there are (the init brings that many interfaces up)."""
        return sum(d["kind"] == "network" for d in self.devices)


def plan_value(plan: Plan, name: str, default: str) -> str:
    """The plan's value of key ``name`` (a plan keeps only the keys it uses), else ``default``."""
    keys = plan.keys
    if name in keys.keys:
        raw = keys.raw(name)
        if raw is not None:
            return str(raw)
    return default


@dataclass(frozen=True)
class InstanceSpec:
    """What differs between instances of one image, for an engine's configuration (a libvirt domain)."""

    #: The instance's name: the domain's, and what its MACs derive from.
    name: str
    #: Each NIC's MAC, by device (:func:`~unik_vmimage.keys.nic_macs`).
    macs: dict[str, str]
    #: ``--net`` and ``--block`` bindings, by device.
    nets: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, str] = field(default_factory=dict)
    #: ``--mem`` (``None``: the image's).
    mem: str | None = None
    #: libvirt's domain type (``None``: ``kvm`` where KVM boots the kernel, else ``qemu``).
    domain_type: str | None = None
    #: The console's log file on the libvirt host (``None``: none).
    console_log: str | None = None
    #: Where relative disk paths (the device table's ``file``) are resolved: the project.
    root: Path = Path()


class VmTarget(Target):
    """A target whose artifact is a Linux kernel and an initramfs running the application as PID 1's child."""

    reports_started = True
    host_network = False  # the guest kernel has no address: the network is unik's stack
    providers: ClassVar[Sequence[type[Provider]]] = ()
    #: Kernel modules every image of the target loads.
    base_modules: ClassVar[tuple[str, ...]] = ()
    #: The kernel command line (the application's arguments are added per boot).
    cmdline: ClassVar[tuple[str, ...]] = ()
    startup = (("unik_vmguest.snapshot", "VM snapshots (readiness to the host, a restore's renewals)"),)

    # -- emit ---------------------------------------------------------------------------

    def needs(self, provider: str) -> VmNeeds:
        """What the provider called ``provider`` needs (nothing if it is not one of this target's)."""
        for cls in self.providers:
            if provider == cls.PLUGIN_NAME and issubclass(cls, GuestProvider):
                return cls.vm
        return VmNeeds()

    def device_record(self, node: Node, needs: VmNeeds) -> dict[str, Any]:
        """The manifest's entry for ``node``: what the runner and the configurations need of it."""
        return {"name": node.name, "kind": node.kind, "provider": node.provider,
                "read_only": bool(node.options.get("read_only")),
                "file": node.options.get("file")}

    def image_devices(self, plan: Plan) -> ImageDevices:
        """The modules, mounts and manifest entries of the plan's devices."""
        image = ImageDevices(list(self.base_modules))
        for node in plan.nodes:
            needs = self.needs(node.provider)
            image.modules += needs.kernel_modules
            image.mounts += [m for m in needs.mounts if m not in image.mounts]
            image.devices.append(self.device_record(node, needs))
        return image

    def image_files(self, plan: Plan, ctx: BuildContext, kernel: Kernel, image: ImageDevices) -> dict[str, str]:
        """Check the specialised kernel; files to add to the image (destination: host path)."""
        return {}

    def finish(self, plan: Plan, ctx: BuildContext, kernel: Kernel, out: Path, report: ImageReport,
               image: ImageDevices, manifest: dict[str, Any]) -> str:
        """Write the kernel and the configurations into ``out``, add the target's entries to ``manifest``.

        Returns the artifact's entry file.  ``manifest`` already holds the initramfs, the
        devices, the memory, the kernel command line and the Python version.
        """
        raise NotImplementedError

    def libvirt_domain(self, directory: Path, manifest: dict[str, Any], spec: InstanceSpec,
                       progress: Progress | None = None) -> Domain:
        """The libvirt domain of the image in ``directory`` for the instance ``spec`` describes."""
        raise NotImplementedError

    def write_libvirt(self, plan: Plan, ctx: BuildContext, out: Path, manifest: dict[str, Any]) -> Path:
        """``dist/<name>-<target>.libvirt.xml``: the domain of an instance named after the application.

        It sits beside the artifact's directory, not in it: it is this host's (absolute
        paths, which libvirtd needs; ``kvm`` or ``qemu`` as KVM works here), while the
        artifact is the same wherever it is built.  The plan's ``--net``, ``--net-mac``
        and ``--block`` apply; its console log is ``<name>-<target>.console.log`` beside it.
        """
        def bindings(name: str) -> dict[str, str]:
            return plan.keys.bindings(name) if name in plan.keys.keys else {}

        name = plan.app.name
        spec = InstanceSpec(name=name, macs=nic_macs(manifest["devices"], name, bindings("net_mac")),
                            nets=bindings("net"), blocks=bindings("block"), root=ctx.root,
                            console_log=str(out.parent.resolve() / f"{out.name}.console.log"))
        domain = self.libvirt_domain(out, manifest, spec, ctx.progress)
        path = out.parent / f"{out.name}.libvirt.xml"
        path.write_text(domain.to_xml())
        return path

    def emit(self, plan: Plan, ctx: BuildContext) -> Artifact:
        """The kernel, the initramfs, the target's files and the manifest."""
        # build tools, imported here so that `unik run` starts sooner
        from unik.lockfile import LockFile

        from .emit import plan_key, prepare_kernel, write_initramfs
        from .kernels import KernelProvider, find_kernel

        providers = cast("dict[str, type[KernelProvider]]", ctx.plugins.kernels())
        kernel = find_kernel(plan_key(plan.keys, KERNEL) or "debian", providers, plan_key(plan.keys, KERNEL_MODULES),
                             ctx.progress, LockFile(ctx.root), "kernel" in ctx.update)
        image = self.image_devices(plan)
        kernel_build = prepare_kernel(plan, ctx, kernel, image.modules, plan_key(plan.keys, COMPRESSION) or "zstd")
        extra = self.image_files(plan, ctx, kernel, image)
        out = ctx.artifact_dir(plan)
        report = write_initramfs(plan, ctx, kernel_build, out, image.mounts, image.nics(), extra,
                                 host_packages=(type(self).__module__.split(".")[0],))
        manifest: dict[str, Any] = {
            "initramfs": report.to_json(),
            "devices": image.devices,
            "mem": plan_value(plan, "mem", "256M"),
            "cmdline": " ".join(self.cmdline),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        }
        entry = self.finish(plan, ctx, kernel, out, report, image, manifest)
        self.write_libvirt(plan, ctx, out, manifest)
        return Artifact(self.PLUGIN_NAME, out, entry, manifest)

    def inspect(self, artifact: Artifact) -> tuple[list[Content], dict[str, str]]:
        """The kernel, the initramfs's files by kind, the configurations."""
        from .inventory import image_contents

        return image_contents(artifact.directory, artifact.manifest)

    # -- run ----------------------------------------------------------------------------

    def check_built(self, artifact: Artifact) -> None:
        """The kernel and the initramfs the manifest names exist."""
        for name in (artifact.manifest["kernel"]["file"], artifact.manifest["initramfs"]["file"]):
            if not (artifact.directory / name).is_file():
                raise RunError(f"{artifact.directory / name} is missing: run `unik build`")

    def run_option(self, name: str, keys: KeyValues, ctx: RunContext) -> str | None:
        """A run key's value: given to ``unik run``, else configured, else its default."""
        if ctx.options.is_set(name):
            return ctx.options.raw(name)
        if name in keys.keys and keys.is_set(name):
            return keys.raw(name)
        return next((k.default for k in self.run_keys if k.name == name), None)

    def instance_macs(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> dict[str, str]:
        """Each NIC's MAC for this run: ``--net-mac``'s, else the instance's own (:func:`~.keys.instance_mac`)."""
        instance = ctx.instance or artifact.directory.name.rsplit("-", 1)[0]
        return nic_macs(artifact.manifest.get("devices", []), instance, given_bindings("net_mac", keys, ctx))

    def app_keys(self, keys: KeyValues) -> KeyValues:
        """The application's and libraries' keys: those the guest parses, not the target's own."""
        own = {k.name for k in self.keys}
        return KeyValues([k for k in keys.keys.values() if k.name not in own],
                         {n: v for n, v in keys.values.items() if n not in own})

    def boot_qemu(self, artifact: Artifact, ctx: RunContext, *, accel: str, machine: str, mem: str,
                  args: Sequence[str], devices: Sequence[str], extra: Sequence[str], timeout: float,
                  booting: str, notes: Sequence[str] = (), session: Session | None = None) -> int:
        """Boot the artifact under QEMU and return the application's exit status.

        ``booting`` is said before the guest starts, then ``notes``; ``--dry-run`` prints
        the command instead.  A signal presses the guest's power button, a second one (or
        the grace period) kills QEMU; a guest that stopped without a status is explained,
        memory named when it is the likely cause.  With a snapshot ``session`` the boot
        saves a snapshot once the application is ready (then QEMU quits: status 0), or
        restores one (:mod:`unik_vmimage.snapshot`).
        """
        from . import snapshot

        manifest = artifact.manifest
        kernel = artifact.directory / manifest["kernel"]["file"]
        with tempfile.TemporaryDirectory(prefix="unik-qemu-") as control:
            qmp_path = Path(control) / "qmp.sock"
            cmdline: Sequence[str] = qemu.BASE_CMDLINE  # QEMU's console, whatever the target boots with elsewhere
            if session is not None:
                cmdline = (*cmdline, snapshot.CMDLINE_FLAG)
                devices = list(devices)
                extra = [*extra, *snapshot.generation_id_args(machine), *session.prepare(Path(control), qmp_path)]
            spec = qemu.Boot(kernel, artifact.directory / manifest["initramfs"]["file"], machine, accel, mem=mem,
                             cmdline=cmdline, args=args, devices=devices, extra=extra, qmp=qmp_path)
            if ctx.dry_run:
                if session is not None:
                    session.join()
                return ctx.show_command(spec.command(qemu.qemu_binary()))
            ctx.progress.info(booting)
            for note in notes:
                ctx.progress.info(note)

            def started(pid: int) -> None:
                ctx.started(**qemu.started_details(pid, accel))
                if session is not None:
                    session.started(pid, lambda: _kill(pid))

            restoring = session is not None and session.mode == "restore"
            try:
                with qemu.Stopper() as stopper:
                    outcome = qemu.boot(spec, boot_timeout=float("inf") if restoring else
                                        timeout or qemu.DEFAULT_BOOT_TIMEOUT_S[accel],
                                        console=sys.stdout.buffer, stderr=sys.stderr.buffer, stop=stopper.requested,
                                        force=stopper.forced, grace=ctx.stop_grace or qemu.STOP_GRACE_S,
                                        started=started)
            except qemu.GuestStopped as exc:
                if session is not None:
                    session.join()
                    if session.saved is not None:
                        return self._saved(session, ctx)
                    if session.error:
                        raise RunError(f"saving the snapshot failed: {session.error}") from None
                raise RunError(memory.explain_stop(str(exc), exc.out_of_memory, exc.silent, mem,
                                                   memory.qemu_mib(mem), manifest["initramfs"])) from None
            if session is not None:
                session.join()
                if session.error:
                    what = "saving the snapshot" if session.mode == "save" else "restoring the snapshot"
                    raise RunError(f"{what} failed: {session.error}"
                                   + ("; unik run --no-snapshot boots cold" if restoring else ""))
        return outcome.status

    def _saved(self, session: Session, ctx: RunContext) -> int:
        """Say what was saved; the run's status (0)."""
        saved = session.saved
        assert saved is not None
        ctx.progress.info(f"snapshot saved in {session.image / 'snapshot'}: {saved.state_bytes / 1e6:.0f} MB, "
                          f"ready after {saved.ready_s:.2f} s, saved in {saved.save_s:.2f} s; "
                          f"`unik run` now starts from it (--no-snapshot boots cold)")
        return 0


def _kill(pid: int) -> None:
    """End QEMU at once (a snapshot exchange failed)."""
    import os
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
