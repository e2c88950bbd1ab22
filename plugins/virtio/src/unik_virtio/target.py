"""The virtio target: emit a kernel + initramfs, boot it under QEMU.

``dist/<name>-virtio/`` holds ``vmlinuz`` (from a kernel provider), the initramfs
(unik-lib-vmimage), ``artifact.json``, whose manifest lists the devices, the memory,
the kernel command line and what the image holds, and for Firecracker ``vmlinux`` (the
uncompressed ELF kernel, extracted from ``vmlinuz``) with ``firecracker.json``; beside it
``<name>-virtio.libvirt.xml``, a libvirt domain for this host (:meth:`VirtioTarget.libvirt_domain`).

Firecracker itself is not run here (it is not packaged for Debian and needs KVM): the
runner is QEMU; ``firecracker --no-api --config-file firecracker.json`` is for users
who have it, and the tests check the configuration against Firecracker's documented
fields (``boot-source``, ``drives``, ``network-interfaces``, ``machine-config``,
``entropy``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unik.errors import BuildError, RunError
from unik.hostnet import AUTO, AutoTap, auto_address, require_tap
from unik.keys import KeyValues
from unik.plan import Node, Plan
from unik.target import Artifact, BuildContext, Check, RunContext, check_disk_image, check_disk_images, given_bindings
from unik_vmimage import memory, qemu, usernet
from unik_vmimage.keys import BUILD_KEYS, IMAGE, VIRTIO_TRANSPORTS, mac_args, nic_macs
from unik_vmimage.target import ImageDevices, InstanceSpec, VmNeeds, VmTarget, plan_value

from .providers import BASE_MODULES, PROVIDERS, RUN_KEYS, Block, Network

if TYPE_CHECKING:  # build-time modules, imported where they are used so that `unik run` starts sooner
    from unik.progress import Progress
    from unik_vmimage.initramfs import ImageReport
    from unik_vmimage.kernels import Kernel
    from unik_vmimage.libvirt_xml import Domain
    from unik_vmimage.snapshot import Session

    from .firecracker import FirecrackerConfig

KERNEL_FILE = "vmlinuz"
VMLINUX_FILE = "vmlinux"
FIRECRACKER_FILE = "firecracker.json"


class VirtioTarget(VmTarget):
    """The application as a VM for QEMU/KVM (and Firecracker)."""

    PLUGIN_NAME = "virtio"
    description = "a bootable VM image (Linux kernel + initramfs) for QEMU/KVM and Firecracker"
    keys = (*RUN_KEYS, *BUILD_KEYS, IMAGE)
    run_keys = RUN_KEYS
    providers = PROVIDERS
    base_modules = (*VIRTIO_TRANSPORTS, *BASE_MODULES)  # BASE_MODULES' virtio_rng carries the boot seed
    cmdline = qemu.BASE_CMDLINE

    def doctor(self) -> Sequence[Check]:
        """What building and booting VM images needs here: QEMU, the kernel's tools, KVM or TCG."""
        from .doctor import doctor_checks

        return doctor_checks()

    # -- emit ---------------------------------------------------------------------------

    def device_record(self, node: Node, needs: VmNeeds) -> dict[str, Any]:
        """The QEMU device the runner attaches, and a disk's sector size."""
        return {**super().device_record(node, needs), "qemu_device": needs.attach,
                "sector_size": node.options.get("sector_size")}

    def finish(self, plan: Plan, ctx: BuildContext, kernel: Kernel, out: Path, report: ImageReport,
               image: ImageDevices, manifest: dict[str, Any]) -> str:
        """``vmlinuz``, ``vmlinux`` and ``firecracker.json``."""
        from unik_vmimage.emit import link_or_copy
        from unik_vmimage.vmlinux import extract_vmlinux

        shutil.copyfile(kernel.image, out / KERNEL_FILE)
        with ctx.progress.step("extracting vmlinux for Firecracker"):
            link_or_copy(extract_vmlinux(kernel.image), out / VMLINUX_FILE)
        taps = plan.keys.bindings("net") if "net" in plan.keys.keys else {}
        macs = nic_macs(image.devices, plan.app.name, plan.keys.bindings("net_mac") if "net_mac" in plan.keys.keys
                        else {})
        config = firecracker_config(report.path.name, manifest["cmdline"], manifest["mem"], image.devices, taps, macs)
        (out / FIRECRACKER_FILE).write_text(json.dumps(config.to_json(), indent=2, sort_keys=True) + "\n")
        kernel_bytes = (out / KERNEL_FILE).stat().st_size
        built = getattr(kernel, "built", None)  # a kernel built from source: its options and build time
        ctx.progress.info(f"kernel {kernel.version} ({kernel_bytes / 1e6:.1f} MB), initramfs "
                          f"{report.bytes / 1e6:.1f} MB: {len(report.stdlib_modules)} stdlib modules, "
                          f"{len(report.kernel_modules)} kernel modules")
        manifest["kernel"] = {"file": KERNEL_FILE, "provider": kernel.provider, "version": kernel.version,
                              "bytes": kernel_bytes, "vmlinux": VMLINUX_FILE, **({"build": built} if built else {})}
        manifest["firecracker"] = FIRECRACKER_FILE
        from unik_vmimage.disk.images import parse_formats

        formats = parse_formats(plan_value(plan, IMAGE.name, ""))
        if formats:
            data = tuple((str(d["name"]), (ctx.root / str(d["file"])).resolve()) for d in image.devices
                         if d["kind"] == "block" and d.get("qemu_device") and d.get("file"))
            manifest["images"] = self.write_images(plan, ctx, out, report, formats, macs, data)
        return KERNEL_FILE

    def write_images(self, plan: Plan, ctx: BuildContext, out: Path, report: ImageReport,
                     formats: tuple[str, ...], macs: dict[str, str],
                     data: tuple[tuple[str, Path], ...] = ()) -> dict[str, Any]:
        """The ``--image`` forms: the bootable disk (raw, qcow2, GCE's) with a command line of its own.

        A disk boots without a runner: its command line carries the configured keys of
        the application and its libraries (``--ipv4``...) and, for an application with
        several NICs or a configured ``--net-mac``, each NIC's MAC (the VM's NIC must carry
        it); a one-NIC application's guest takes the only NIC, whatever address the cloud
        or engine gives it.  Never anything per boot (the boot seed comes from virtio-rng).  ``data``: the
        block devices whose device table names a ``file``, carried as partitions named
        after them (the guest finds a partition by its name when no disk has its serial).
        """
        from unik.version import __version__
        from unik_vmimage.disk.images import DiskSpec, write_images

        configured = plan.keys.bindings("net_mac") if "net_mac" in plan.keys.keys else {}
        # One NIC and no --net-mac: the guest takes the only NIC there is, whatever address the cloud gives it.
        named = macs if configured or len(macs) > 1 else {}
        cmdline = qemu.kernel_cmdline(self.cmdline, [*self.app_keys(plan.keys).as_args(), *mac_args(named)])
        spec = DiskSpec(plan.app.name, out / KERNEL_FILE, report.path, cmdline, __version__, data)
        images = {**write_images(formats, spec, out, ctx.progress), "macs": named, "nics": list(macs)}
        if "oci" in formats:
            from unik_vmimage.disk import kubevirt
            from unik_vmimage.memory import parse_mib

            name = f"{plan.app.name}.kubevirt.yaml"
            images["kubevirt"] = {"file": name, "ports": app_ports(plan),
                                  "memory_mib": parse_mib(plan_value(plan, "mem", "256"))}
            (out / name).write_text(kubevirt.render(plan.app.name, images))
        return images

    def libvirt_domain(self, directory: Path, manifest: dict[str, Any], spec: InstanceSpec,
                       progress: Progress | None = None) -> Domain:
        """A ``kvm`` or ``qemu`` domain: q35, ``vmlinuz`` booted directly, virtio disks, NICs and RNG.

        Without a type given, ``kvm`` when KVM boots this kernel here (the probe ``unik
        run`` makes), else ``qemu`` (TCG).  Disks are ``--block``'s files, else the device
        table's, else ``<device>.img`` beside the domain; NICs follow ``--net``
        (:func:`unik_vmimage.libvirt_xml.host_side`).
        """
        from unik_vmimage.libvirt_xml import DirectBoot, Disk, Domain, host_side

        directory = directory.resolve()
        kind = spec.domain_type or _domain_type(directory / manifest["kernel"]["file"], progress)
        args = ["--", *mac_args(spec.macs)] if spec.macs else []
        boot = DirectBoot(str(directory / manifest["kernel"]["file"]), str(directory / manifest["initramfs"]["file"]),
                          " ".join([manifest["cmdline"], "unik_exit=poweroff", *args]))
        disks: list[Disk] = []
        for d in manifest["devices"]:
            if d["kind"] == "block" and d.get("qemu_device"):
                file = spec.blocks.get(d["name"]) or d.get("file")
                source = (spec.root / file).expanduser().resolve() if file else directory / f"{d['name']}.img"
                size = d.get("sector_size")
                disks.append(Disk(d["name"], str(source), "vd" + chr(ord("a") + len(disks)), "virtio",
                                  bool(d.get("read_only")), size if size and size != 512 else None))
        nics = [host_side(d["name"], spec.nets.get(d["name"]), spec.macs[d["name"]]) for d in manifest["devices"]
                if d["kind"] == "network" and d.get("qemu_device")]
        try:
            mib = memory.parse_mib(spec.mem or manifest["mem"])
        except ValueError as exc:
            raise BuildError(f"--mem {exc}") from None
        return Domain(type=kind, name=spec.name, memory_mib=mib, boot=boot, disks=tuple(disks),
                      interfaces=tuple(nics), console_log=spec.console_log)

    # -- run ----------------------------------------------------------------------------

    def preflight(self, plan: Plan, keys: KeyValues, ctx: RunContext) -> None:
        """Every disk image is given, exists and can be opened, every TAP named exists, ``--publish`` holds.

        All before an image is built or booted.
        """
        check_disk_images(plan, Block.PLUGIN_NAME, given_bindings("block", keys, ctx))
        for device, ifname in given_bindings("net", keys, ctx).items():
            if ifname not in (AUTO, usernet.USER):
                require_tap(device, ifname)
        nics = [n.name for n in plan.nodes if n.provider == Network.PLUGIN_NAME]
        usernet.preflight(keys, ctx, nics, {k.name for k in self.keys})

    def run(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> int:
        """Boot the image under QEMU; the application's exit status is returned."""
        self.check_built(artifact)
        if self.run_option("net", keys, ctx) is not None:
            raise RunError("--net takes DEVICE=TAP, DEVICE=auto or DEVICE=user on the virtio target "
                           "(e.g. --net service=user)")
        app_keys = self.app_keys(keys)
        publish = usernet.parse_all(self.run_option("publish", keys, ctx))  # checked by preflight
        static = (usernet.app_option(app_keys, ctx.extra_args, "ipv4"),
                  usernet.app_option(app_keys, ctx.extra_args, "ipv4_gateway"))
        mem = self.run_option("mem", keys, ctx) or str(artifact.manifest.get("mem", "256M"))
        memory.check_floor(artifact.directory.name.rsplit("-", 1)[0], mem, memory.qemu_mib(mem),
                           artifact.manifest["initramfs"])
        nets = given_bindings("net", keys, ctx)
        macs = self.instance_macs(artifact, keys, ctx)
        with contextlib.ExitStack() as made:
            made_taps, summaries = ({}, {}) if ctx.dry_run else _host_taps(nets, app_keys, made)
            qemu_devices, drives, taps = _devices(artifact.manifest.get("devices", []),
                                                  given_bindings("block", keys, ctx), {**nets, **made_taps},
                                                  publish, static, macs)
            kernel = artifact.directory / artifact.manifest["kernel"]["file"]
            accel = qemu.choose_accel(self.run_option("accel", keys, ctx) or "auto", kernel, ctx.progress)
            machine = qemu.pick_machine(self.run_option("machine", keys, ctx) or "auto", accel)
            session = self._snapshot_session(artifact, keys, ctx, machine=machine, accel=accel, mem=mem,
                                             devices=qemu_devices, extra=drives,
                                             args=[*app_keys.as_args(), *ctx.extra_args], macs=macs,
                                             private_links=frozenset(d for d, t in taps.items() if t == usernet.USER))
            if session is not None and session.manifest is not None:  # restoring: QEMU's NICs as saved
                macs = dict(session.manifest.macs)
                qemu_devices, drives, taps = _devices(artifact.manifest.get("devices", []),
                                                      given_bindings("block", keys, ctx), {**nets, **made_taps},
                                                      publish, static, macs)
            notes = []
            for device, tap in taps.items():
                if tap == usernet.USER:
                    how = usernet.describe(publish, static[0] is not None)
                elif device in summaries:
                    how = summaries[device]
                else:
                    how = f"on TAP {tap}"
                notes.append(f"network device {device}: {how}")
            restoring = session is not None and session.mode == "restore"
            doing = "restoring" if restoring else "booting"
            return self.boot_qemu(
                artifact, ctx, accel=accel, machine=machine, mem=mem,
                args=[*app_keys.as_args(), *mac_args(macs), *ctx.extra_args],
                devices=qemu_devices, extra=drives, timeout=float(self.run_option("boot_timeout", keys, ctx) or 0),
                booting=f"{doing} {artifact.directory.name} under QEMU ({machine}, {accel.upper()}, {mem})"
                        + (" to save a snapshot once it serves" if session is not None and not restoring else ""),
                notes=notes, session=session)

    def _snapshot_session(self, artifact: Artifact, keys: KeyValues, ctx: RunContext, *, machine: str, accel: str,
                          mem: str, devices: list[str], extra: list[str], args: list[str], macs: dict[str, str],
                          private_links: frozenset[str] = frozenset()) -> Session | None:
        """The snapshot to save (``--save-snapshot``) or to restore (one matching the run), or ``None``.

        A snapshot that does not match the run is refused, saying what differs: the run
        boots cold.  ``macs`` are this instance's NICs' MAC addresses: saved as the
        snapshot's, or given to the restored guest (except on QEMU's user network, a link
        private to the instance, where the snapshot's stay).
        """
        save = _flag(self.run_option("save_snapshot", keys, ctx))
        cold = _flag(self.run_option("no_snapshot", keys, ctx))
        if save and cold:
            raise RunError("--save-snapshot boots cold and saves; --no-snapshot only boots cold: give one of them")
        if cold:
            return None
        from unik_vmimage import snapshot

        saved = None if save else snapshot.load(artifact.directory)
        if not save and saved is None:
            return None
        drives = [extra[i + 1] for i in range(len(extra) - 1) if extra[i] == "-drive"]
        disks = []
        for drive in drives:
            parts = dict(p.split("=", 1) for p in drive.split(",") if "=" in p)
            disks.append((parts["id"].removeprefix("disk-"), Path(parts["file"]).stat().st_size))
        manifest = artifact.manifest
        binding = snapshot.session_binding(
            kernel=artifact.directory / manifest["kernel"]["file"],
            initramfs=artifact.directory / manifest["initramfs"]["file"],
            kernel_version=str(manifest["kernel"].get("version", "")), qemu=qemu.qemu_binary(), machine=machine,
            accel=accel, mem=mem, devices=devices, drives=drives, args=args, disks=disks)
        if save:
            return snapshot.Session("save", artifact.directory, binding, ctx.progress, macs=macs,
                                    private_links=private_links,
                                    ready_timeout=float(self.run_option("boot_timeout", keys, ctx) or 0) or 300.0)
        assert saved is not None
        differs = snapshot.mismatch(saved.binding, binding)
        if differs:
            ctx.progress.warn(f"the snapshot in {snapshot.snapshot_dir(artifact.directory)} does not match this run: "
                              f"{'; '.join(differs)} differ. Booting cold (unik run --save-snapshot saves one "
                              f"for these options)")
            return None
        return snapshot.Session("restore", artifact.directory, binding, ctx.progress, macs=macs,
                                manifest=saved, private_links=private_links)


def _flag(value: str | None) -> bool:
    """A boolean run key's value."""
    return (value or "false").lower() in ("1", "true", "yes", "on")


def app_ports(plan: Plan) -> dict[str, int]:
    """The application's ports: its integer keys named ``port`` or ``*_port``, as configured, else their defaults."""
    ports = {}
    for name, key in sorted(plan.keys.keys.items()):
        if key.type == "int" and (name == "port" or name.endswith("_port")):
            raw = plan.keys.raw(name)
            if raw is not None:
                ports[name] = int(str(raw), 0)
    return ports


def _domain_type(kernel: Path, progress: Progress | None) -> str:
    """``kvm`` where KVM boots ``kernel`` here, else ``qemu`` (TCG), as ``unik run`` decides."""
    ok, why = qemu.probe_kvm(kernel)
    if not ok and progress is not None:
        progress.info(f"libvirt domain type qemu (TCG emulation): KVM does not boot guests here ({why})")
    return "kvm" if ok else "qemu"


def _host_taps(
    nets: dict[str, str], app_keys: KeyValues, made: contextlib.ExitStack,
) -> tuple[dict[str, str], dict[str, str]]:
    """``--net`` with each ``auto`` replaced by a TAP made for the run, and what was made, by device.

    ``made`` removes the TAPs when the run ends; a TAP named must exist.
    """
    out, summaries = dict(nets), {}
    for device, ifname in nets.items():
        if ifname == AUTO:
            tap = made.enter_context(AutoTap(device, auto_address(device, app_keys)))
            out[device], summaries[device] = tap.ifname, tap.summary
        elif ifname != usernet.USER:
            require_tap(device, ifname)
    return out, summaries


def _devices(
    devices: list[dict[str, Any]], files: dict[str, str], taps: dict[str, str], publish: list[usernet.Publish],
    static: tuple[str | None, str | None], macs: dict[str, str],
) -> tuple[list[str], list[str], dict[str, str]]:
    """QEMU ``-device`` values, other arguments (drives, netdevs) and the TAPs used (``user``: QEMU's network).

    Each NIC gets its MAC from ``macs`` (by device name).
    """
    for kind, given, key in (("block", files, "block"), ("network", taps, "net")):
        unknown = sorted(set(given) - {d["name"] for d in devices if d["kind"] == kind})
        if unknown:
            raise RunError(f"--{key} {unknown[0]}=...: the application has no {kind} device {unknown[0]!r}")
    out: list[str] = []
    args: list[str] = []
    used: dict[str, str] = {}
    for d in devices:
        family, name = d.get("qemu_device"), d["name"]
        if not family:
            continue
        if d["kind"] == "block":
            disk = str(files.get(name) or d.get("file") or "")  # --block, else the device table's file
            if not disk:
                raise RunError(f"block device {name!r} needs a disk image: unik run --block {name}=FILE "
                               f"(or file = \"...\" in [tool.unik.devices.{name}])")
            check_disk_image(name, disk, writable=not d.get("read_only"))
            path = Path(disk).expanduser().resolve()
            readonly = ",readonly=on" if d.get("read_only") else ""
            args += ["-drive", f"file={path},if=none,id=disk-{name},format=raw,cache=writeback{readonly}"]
            size = d.get("sector_size") or 512
            sectors = f",logical_block_size={size},physical_block_size={size}" if size != 512 else ""
            out.append(f"{family},drive=disk-{name},serial={name}{sectors}")
        elif d["kind"] == "network":
            if name not in taps:
                raise RunError(f"network device {name!r} needs a host network: unik run --net {name}=user "
                               f"(no root; publish ports with --publish HOST:GUEST) or unik run --net {name}=TAP "
                               f"({name}=auto creates one)")
            if taps[name] == usernet.USER:
                used[name] = usernet.USER
                args += ["-netdev", usernet.netdev(name, publish, *static)]
                out.append(qemu.nic_device(family, name, macs[name]))
                continue
            tap = used[name] = taps[name]
            args += ["-netdev", f"tap,id=net-{name},ifname={tap},script=no,downscript=no"]
            out.append(qemu.nic_device(family, name, macs[name]))
        else:
            out.append(family)
    return out, args, used


def firecracker_config(
    initramfs: str, cmdline: str, mem: str, devices: list[dict[str, Any]], taps: dict[str, str],
    macs: dict[str, str] | None = None,
) -> FirecrackerConfig:
    """A Firecracker VM configuration (``firecracker --no-api --config-file firecracker.json``).

    Firecracker boots the uncompressed ELF kernel (``vmlinux``, extracted from
    ``vmlinuz`` at build time) and places virtio devices on MMIO.  It announces them in
    two ways: ``virtio_mmio.device=`` on the kernel command line, which only a kernel with
    ``CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`` reads (Debian's cloud kernel lacks it, so the
    init's ``virtio_mmio`` module ignores them), and, from Firecracker 1.10 on x86_64,
    ACPI tables (``LNRO0005`` devices), which Debian's ``virtio_mmio`` module does match.
    With Debian's kernel the devices are therefore found only under a Firecracker with
    ACPI; ``--kernel source`` builds a kernel with both (see
    :data:`unik_vmimage.source_kernel.FIRECRACKER_OPTIONS`).  Firecracker has no
    power-off: the init reboots instead (``unik_exit=reboot``).  Each block device of the plan becomes a
    drive whose ``drive_id`` is the device's name (the guest finds disks by that serial)
    and whose ``path_on_host`` is ``<name>.img`` beside this file, to be created by the
    user; each network device an interface on the TAP configured with ``--net`` (else
    ``unik-<name>``) with its MAC from ``macs`` (the build's: the application's name as
    the instance's), passed to the guest on the command line too (``--net-mac``);
    ``entropy`` (virtio-rng) is always there: the init reads the guest's boot seed from
    it, so the configuration carries none.  Relative paths are resolved by Firecracker
    from its working directory: run it in this directory.
    """
    from .firecracker import BootSource, Drive, Entropy, FirecrackerConfig, MachineConfig, NetworkInterface

    macs = macs if macs is not None else nic_macs(devices, "unik", {})
    try:
        mib = memory.parse_mib(mem)
    except ValueError as exc:
        raise BuildError(f"--mem {exc}") from None
    return FirecrackerConfig(
        boot_source=BootSource(kernel_image_path=VMLINUX_FILE, initrd_path=initramfs,
                               boot_args=" ".join([cmdline, "reboot=k", "pci=off", "unik_exit=reboot",
                                                   *(["--", *mac_args(macs)] if macs else [])])),
        machine_config=MachineConfig(vcpu_count=1, mem_size_mib=mib, smt=False),
        drives=tuple(Drive(drive_id=d["name"], path_on_host=f"{d['name']}.img", is_root_device=False,
                           is_read_only=bool(d.get("read_only")), cache_type="Writeback")
                     for d in devices if d["kind"] == "block" and d.get("qemu_device")),
        network_interfaces=tuple(NetworkInterface(iface_id=d["name"],
                                                  host_dev_name=taps.get(d["name"], f"unik-{d['name']}"),
                                                  guest_mac=macs[d["name"]])
                                 for d in devices if d["kind"] == "network" and d.get("qemu_device")),
        entropy=Entropy(),
    )
