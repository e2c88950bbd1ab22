"""The xen target: emit a PVH (or PV) guest and its ``xl`` configuration; run it.

``dist/<name>-xen/`` holds ``vmlinux`` (the uncompressed ELF kernel extracted from the
kernel provider's bzImage: Xen's domain builder and QEMU's PVH loader need the ELF and
its ``XEN_ELFNOTE_PHYS32_ENTRY`` note, checked here), the initramfs of
unik-lib-vmimage carrying only the Xen front-end modules the plan needs
(``xen-netfront``, ``xen-blkfront``; the console, ``hvc0``, is built into the kernel),
``<name>.xl`` and ``artifact.json``; beside it ``<name>-xen.libvirt.xml``, the same guest as a PVH
domain for libvirt's libxl driver (:meth:`XenTarget.libvirt_domain`).

``unik run -t xen`` runs ``xl create -c`` in a Xen control domain and takes the
application's exit status from the init's last console line (``unik_exit=poweroff``:
Xen has no ``isa-debug-exit``).  Elsewhere it says so; ``--emulate`` boots the same
kernel and initramfs under QEMU, whose ``-kernel`` loader enters an ELF kernel through
its PVH note — no Xen devices then, so only for plans without network or block devices.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from unik.errors import BuildError, RunError
from unik.keys import KeyValues
from unik.plan import Node, Plan
from unik.target import Artifact, BuildContext, Check, RunContext, check_disk_image, given_bindings
from unik_vmimage import memory, qemu, usernet
from unik_vmimage.guestconsole import GuestConsole
from unik_vmimage.keys import mac_args, nic_macs
from unik_vmimage.target import ImageDevices, InstanceSpec, VmNeeds, VmTarget, plan_value

from .elfnotes import guest_types
from .providers import BUILD_KEYS, DISKS_FILE, ON_CRASH, PROVIDERS, RUN_KEYS, TSC_MODE, VCPUS, XEN_TYPE
from .xlconfig import Disk, DomainConfig, Vif, mem_mib, vdev

if TYPE_CHECKING:
    from unik.progress import Progress
    from unik_vmimage.initramfs import ImageReport
    from unik_vmimage.kernels import Kernel
    from unik_vmimage.libvirt_xml import Domain

VMLINUX_FILE = "vmlinux"
#: The guest's kernel command line under Xen: Xen's console, and the init prints the
#: exit status and powers off (``isa-debug-exit`` does not exist under Xen).  The guest
#: kernel keeps IPv6 off, as under virtio: unik's stack alone speaks it on the NIC (the
#: kernel would make the same addresses from the same MAC and reset TCP to them).
XEN_CMDLINE = ("console=hvc0", "quiet", "panic=-1", "unik_exit=poweroff", "ipv6.disable_ipv6=1")
DEFAULT_BRIDGE = "xenbr0"
XEN_BOOT_TIMEOUT_S = 90.0
_STATUS = re.compile(rb"unik-init: exit status (\d+)")


def control_domain(capabilities: Path = Path("/proc/xen/capabilities")) -> str | None:
    """Why this host cannot run ``xl create`` (``None``: it is a Xen control domain)."""
    try:
        caps = capabilities.read_text()
    except FileNotFoundError:
        return f"{capabilities} does not exist: this host is not running under Xen (or xenfs is not mounted)"
    except OSError as exc:
        return f"cannot read {capabilities}: {exc.strerror}"
    if "control_d" not in caps:
        return f"this is a Xen guest, not the control domain ({capabilities} lacks control_d)"
    return None


def domain_config(manifest: dict[str, Any], directory: Path | None, nets: dict[str, str], blocks: dict[str, str],
                  mem: str | None = None, vcpus: int | None = None, args: Sequence[str] = (),
                  macs: dict[str, str] | None = None, name: str | None = None) -> DomainConfig:
    """The xl configuration of an artifact; file names are made absolute under ``directory`` if given.

    The domain is called ``name`` (the instance's; the application's when ``None``); each
    vif gets its MAC from ``macs`` (by device; the domain's own when ``None``), which the
    command line passes to the guest too.
    """
    def where(name: str) -> str:
        return str(directory / name) if directory is not None else name

    devices = manifest["devices"]
    for kind, given, key in (("block", blocks, "block"), ("network", nets, "net")):
        unknown = sorted(set(given) - {d["name"] for d in devices if d["kind"] == kind})
        if unknown:
            raise BuildError(f"--{key} {unknown[0]}=...: the application has no {kind} device {unknown[0]!r}")
    name = name or manifest["name"]
    macs = macs if macs is not None else nic_macs(devices, name, {})
    vifs = [Vif(macs[d["name"]], nets.get(d["name"], DEFAULT_BRIDGE)) for d in devices if d.get("xl") == "vif"]
    args = [*mac_args(macs), *args]
    disks = []
    for d in devices:
        if d.get("xl") == "disk":
            block_file = blocks.get(d["name"])
            # --block FILE, else the [tool.unik.devices] file as written (relative: to where xl runs)
            default = d.get("file") or where(f"{d['name']}.img")
            target = str(Path(block_file).expanduser().resolve()) if block_file else default
            disks.append(Disk(d["vdev"], target, bool(d.get("read_only"))))
    for arg in args:
        if any(c in arg for c in '"\n\0') or not arg:
            raise RunError(f"argument {arg!r} cannot travel on the kernel command line")
    quoted = [f'"{a}"' if " " in a else a for a in args]  # the kernel's quoting
    cmdline = " ".join([manifest["cmdline"], *(["--", *quoted] if quoted else [])])
    return DomainConfig(
        name=name, type=manifest["xen_type"], kernel=where(manifest["kernel"]["file"]),
        ramdisk=where(manifest["initramfs"]["file"]), memory_mib=mem_mib(mem or manifest["mem"]),
        cmdline=cmdline, vcpus=vcpus or int(manifest.get("vcpus", 1)), vifs=vifs, disks=disks,
        on_crash=manifest["on_crash"], tsc_mode=manifest.get("tsc_mode"),
    )


@dataclass
class XlOutcome:
    """How an ``xl create -c`` ended."""

    status: int | None
    returncode: int
    first_output_s: float | None
    output: bytes


def xl_boot(
    command: Sequence[str], *, boot_timeout: float, console: BinaryIO | None, on_timeout: Callable[[], None],
    time_limit: float | None = None, cwd: Path | None = None, stop: qemu.Stopper | None = None,
    on_stop: Callable[[], None] | None = None, grace: float = qemu.STOP_GRACE_S,
) -> XlOutcome:
    """Run ``xl create -c`` (``command``), copy the console, find the init's exit status.

    ``xl`` may return 0 although the guest crashed: the status comes from the console's
    ``unik-init: exit status N`` line only (``None``: the guest never reported one).  A
    guest silent for ``boot_timeout`` seconds, or running past ``time_limit``, is
    destroyed (``on_timeout``) and a :class:`RunError` raised.  When ``stop`` reports a
    signal, ``on_stop`` asks the guest to shut down (``xl shutdown``: the guest's kernel
    runs /sbin/poweroff, the init, which stops the application); when ``stop`` is forced
    or ``grace`` seconds pass, the guest is destroyed.  ``xl`` runs in its own session:
    a Ctrl-C reaches only this runner.
    """
    proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
    guest = GuestConsole(proc, console)
    asked: float | None = None
    destroyed = False

    def tick() -> None:
        nonlocal asked, destroyed
        if stop is not None and stop.requested() is not None and not destroyed:
            if asked is None and on_stop is not None:
                asked = time.monotonic()
                on_stop()
            elif stop.forced() or on_stop is None or time.monotonic() - (asked or 0) > grace:
                destroyed = True
                on_timeout()
        if guest.silent_for(boot_timeout):
            on_timeout()
            raise RunError(f"the guest printed nothing on its console within {boot_timeout:g} s; it is "
                           f"destroyed. Command: {' '.join(command)}")
        if time_limit is not None and guest.elapsed() > time_limit:
            on_timeout()
            raise RunError(f"the guest was still running after {time_limit:g} s; it is destroyed")

    returncode = guest.follow(tick, 0.2)
    found = _STATUS.findall(bytes(guest.out))
    return XlOutcome(int(found[-1]) if found else None, returncode, guest.first, bytes(guest.out))


class XenTarget(VmTarget):
    """The application as a Xen PVH (or PV) guest."""

    PLUGIN_NAME = "xen"
    description = "a Xen PVH (or PV) guest: ELF kernel + initramfs and an xl configuration"
    keys = (*RUN_KEYS, *BUILD_KEYS)
    run_keys = RUN_KEYS
    providers = PROVIDERS
    # the ACPI power button: --emulate's QEMU presses it to stop the guest (under Xen,
    # xl shutdown runs /sbin/poweroff instead; the module finds no button there)
    base_modules = ("button",)
    cmdline = XEN_CMDLINE

    # -- emit ---------------------------------------------------------------------------

    def device_record(self, node: Node, needs: VmNeeds) -> dict[str, Any]:
        """The xl list the device goes into (``disk``, ``vif``)."""
        return {**super().device_record(node, needs), "xl": needs.attach}

    def image_devices(self, plan: Plan) -> ImageDevices:
        """Each disk gets its Xen virtual device name (``xvda``...), in the plan's order."""
        image = super().image_devices(plan)
        disks = [d for d in image.devices if d["xl"] == "disk"]
        for index, device in enumerate(disks):
            device["vdev"] = vdev(index)
        return image

    def image_files(self, plan: Plan, ctx: BuildContext, kernel: Kernel, image: ImageDevices) -> dict[str, str]:
        """The kernel must boot as the ``--xen-type`` asked; the image gets the disk map."""
        from unik_vmimage.vmlinux import extract_vmlinux

        xen_type = plan_value(plan, XEN_TYPE.name, "pvh")
        with ctx.progress.step("extracting vmlinux (the ELF kernel Xen loads)"):
            vmlinux = extract_vmlinux(kernel.image)
            types = guest_types(vmlinux)
        if xen_type not in types:
            what = ("the XEN_ELFNOTE_PHYS32_ENTRY note (CONFIG_XEN_PVH)" if xen_type == "pvh"
                    else "the XEN_ELFNOTE_ENTRY note (CONFIG_XEN_PV)")
            raise BuildError(f"kernel {kernel.version} lacks {what}: it cannot boot as a {xen_type.upper()} "
                             f"guest (it can as: {', '.join(types) or 'neither'}); choose another --kernel"
                             + (" or --xen-type pv" if "pv" in types else ""))
        image.found.update(vmlinux=vmlinux, guest_types=types, xen_type=xen_type)
        ctx.build_dir.mkdir(parents=True, exist_ok=True)
        disk_map = ctx.build_dir / "xen-disks.json"
        disks = {d["name"]: d["vdev"] for d in image.devices if d["xl"] == "disk"}
        disk_map.write_text(json.dumps(disks, sort_keys=True) + "\n")
        return {DISKS_FILE: str(disk_map)}

    def finish(self, plan: Plan, ctx: BuildContext, kernel: Kernel, out: Path, report: ImageReport,
               image: ImageDevices, manifest: dict[str, Any]) -> str:
        """``vmlinux`` and ``<name>.xl``."""
        from unik_vmimage.emit import link_or_copy

        link_or_copy(image.found["vmlinux"], out / VMLINUX_FILE)
        xen_type = image.found["xen_type"]
        manifest.update({
            "name": plan.app.name,
            "kernel": {"file": VMLINUX_FILE, "provider": kernel.provider, "version": kernel.version,
                       "bytes": (out / VMLINUX_FILE).stat().st_size, "guest_types": image.found["guest_types"]},
            "vcpus": int(plan_value(plan, VCPUS.name, "1")),
            "xen_type": xen_type,
            "tsc_mode": plan_value(plan, TSC_MODE.name, "native"),
            "on_crash": plan_value(plan, ON_CRASH.name, "destroy"),
            "xl": f"{plan.app.name}.xl",
        })
        nets = plan.keys.bindings("net") if "net" in plan.keys.keys else {}
        blocks = plan.keys.bindings("block") if "block" in plan.keys.keys else {}
        macs = nic_macs(image.devices, plan.app.name,
                        plan.keys.bindings("net_mac") if "net_mac" in plan.keys.keys else {})
        (out / manifest["xl"]).write_text(domain_config(manifest, None, nets, blocks, macs=macs).text())
        ctx.progress.info(f"{xen_type.upper()} guest: kernel {kernel.version} ({manifest['kernel']['bytes'] / 1e6:.1f} "
                          f"MB ELF), initramfs {report.bytes / 1e6:.1f} MB with {len(report.kernel_modules)} "
                          f"kernel modules; {out / manifest['xl']}")
        return str(manifest["xl"])

    def libvirt_domain(self, directory: Path, manifest: dict[str, Any], spec: InstanceSpec,
                       progress: Progress | None = None) -> Domain:
        """A PVH domain for libvirt's libxl driver: ``vmlinux``, Xen disks by ``xvd`` name, vifs on bridges."""
        from unik_vmimage.libvirt_xml import DirectBoot, Disk, Domain, Interface

        directory = directory.resolve()
        args = ["--", *mac_args(spec.macs)] if spec.macs else []
        boot = DirectBoot(str(directory / manifest["kernel"]["file"]), str(directory / manifest["initramfs"]["file"]),
                          " ".join([manifest["cmdline"], *args]))
        disks = []
        for d in manifest["devices"]:
            if d.get("xl") == "disk":
                file = spec.blocks.get(d["name"]) or d.get("file")
                source = (spec.root / file).expanduser().resolve() if file else directory / f"{d['name']}.img"
                disks.append(Disk(d["name"], str(source), d["vdev"], "xen", bool(d.get("read_only"))))
        nics = [Interface(spec.macs[d["name"]], "bridge", spec.nets.get(d["name"]) or DEFAULT_BRIDGE, None)
                for d in manifest["devices"] if d.get("xl") == "vif"]
        return Domain(type="xen", name=spec.name, memory_mib=mem_mib(spec.mem or manifest["mem"]), boot=boot,
                      vcpus=int(manifest.get("vcpus", 1)), disks=tuple(disks), interfaces=tuple(nics),
                      on_crash=manifest["on_crash"])

    # -- run ----------------------------------------------------------------------------

    def preflight(self, plan: Plan, keys: KeyValues, ctx: RunContext) -> None:
        """Disk images given with ``--block`` exist and can be opened (the others are the table's or the image's)."""
        files = given_bindings("block", keys, ctx)
        for node in plan.nodes:
            if node.kind == "block" and node.name in files:
                check_disk_image(node.name, files[node.name], writable=not node.options.get("read_only"))
        nics = [n.name for n in plan.nodes if n.kind == "network"]
        if (usernet.run_option("emulate", keys, ctx) or "false").lower() in ("1", "true", "yes", "on"):
            _check_emulated([n.name for n in plan.nodes if n.kind == "block"], nics, given_bindings("net", keys, ctx))
            usernet.preflight(keys, ctx, nics, {k.name for k in self.keys})
            return
        user = sorted(n for n, v in given_bindings("net", keys, ctx).items() if v == usernet.USER)
        if usernet.run_option("publish", keys, ctx) or user:
            what = f"--net {user[0]}=user" if user else "--publish"
            raise RunError(f"{what}: QEMU's user network exists only with --emulate; under Xen the guest is on a "
                           f"bridge of the control domain (--net DEVICE=BRIDGE)")

    def run(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> int:
        """``xl create -c`` in a control domain, or QEMU's PVH loader with ``--emulate``."""
        manifest = artifact.manifest
        self.check_built(artifact)

        def option(name: str) -> str | None:
            return self.run_option(name, keys, ctx)

        def bindings(name: str) -> dict[str, str]:
            return given_bindings(name, keys, ctx)

        app_keys = self.app_keys(keys)
        args = [*app_keys.as_args(), *ctx.extra_args]
        timeout = float(option("boot_timeout") or 0)
        emulate = (option("emulate") or "false").lower() in ("1", "true", "yes", "on")
        mem = option("mem") or manifest["mem"]
        try:
            mib = memory.qemu_mib(mem) if emulate else mem_mib(mem)
        except BuildError as exc:
            raise RunError(str(exc)) from None
        memory.check_floor(artifact.directory.name.rsplit("-", 1)[0], mem, mib, manifest["initramfs"])
        if emulate:
            publish = usernet.parse_all(option("publish"))  # checked by preflight
            static = (usernet.app_option(app_keys, ctx.extra_args, "ipv4"),
                      usernet.app_option(app_keys, ctx.extra_args, "ipv4_gateway"))
            return self._emulate(artifact, mem, args, timeout, ctx, bindings("net"), publish, static,
                                 self.instance_macs(artifact, keys, ctx))
        why = control_domain()
        if why and not ctx.dry_run:
            raise RunError(f"unik run -t xen needs a Xen control domain (dom0) with the xl toolstack: {why}. "
                           "Run it in dom0, or try `unik run -t xen --emulate` to boot the same PVH image "
                           "under QEMU (no Xen devices), and `unik doctor -t xen` to see what is missing")
        xl = shutil.which("xl") or ("xl" if ctx.dry_run else None)
        if xl is None:
            raise RunError("the xl command is not installed: apt-get install xen-utils")
        def destroy() -> None:
            subprocess.run([xl, "destroy", config.name], capture_output=True, timeout=60, check=False)

        def shutdown() -> None:
            print("unik: asking the guest to stop (xl shutdown); again to destroy it", file=sys.stderr, flush=True)
            subprocess.run([xl, "shutdown", config.name], capture_output=True, timeout=60, check=False)

        try:
            config = domain_config(manifest, artifact.directory.resolve(), bindings("net"), bindings("block"),
                                   option("mem"), int(option("vcpus") or 0) or None, args,
                                   self.instance_macs(artifact, keys, ctx), ctx.instance or None)
        except BuildError as exc:
            raise RunError(str(exc)) from None
        if ctx.dry_run:  # the configuration this run would use, kept beside the artifact
            kept = artifact.directory / f"{config.name}.run.xl"
            kept.write_text(config.text())
            return ctx.show_command([xl, "create", "-c", str(kept)])
        with tempfile.NamedTemporaryFile("w", suffix=".xl", prefix=f"{config.name}-", delete=False) as f:
            f.write(config.text())
        ctx.progress.info(f"xl create -c: {config.type.upper()} guest {config.name}, {config.memory_mib} MiB")
        ctx.started(domain=config.name)
        try:
            with qemu.Stopper() as stopper:
                outcome = xl_boot([xl, "create", "-c", f.name], boot_timeout=timeout or XEN_BOOT_TIMEOUT_S,
                                  console=sys.stdout.buffer, on_timeout=destroy, stop=stopper, on_stop=shutdown,
                                  grace=ctx.stop_grace or qemu.STOP_GRACE_S)
        finally:
            os.unlink(f.name)
        if outcome.status is None:
            why = (f"the guest ended without reporting an exit status (xl exited {outcome.returncode}; "
                   "a crash? see its console output above)")
            raise RunError(memory.explain_stop(why, False, True, mem, mib, manifest["initramfs"]))
        return outcome.status

    def _emulate(self, artifact: Artifact, mem: str, args: list[str], timeout: float, ctx: RunContext,
                 nets: dict[str, str], publish: list[usernet.Publish], static: tuple[str | None, str | None],
                 macs: dict[str, str]) -> int:
        manifest = artifact.manifest
        nics = [d for d in manifest["devices"] if d.get("xl") == "vif"]
        _check_emulated([d["name"] for d in manifest["devices"] if d.get("xl") == "disk"], [d["name"] for d in nics],
                        nets)
        netdevs = [arg for d in nics for arg in ("-netdev", usernet.netdev(d["name"], publish, *static))]
        for d in nics:
            ctx.progress.info(f"network device {d['name']}: {usernet.describe(publish, static[0] is not None)}")
        accel = qemu.choose_accel("auto", artifact.directory / manifest["kernel"]["file"], ctx.progress)
        machine = qemu.pick_machine("auto", accel)
        return self.boot_qemu(
            artifact, ctx, accel=accel, machine=machine, mem=mem, args=[*mac_args(macs), *args],
            devices=[qemu.nic_device("virtio-net", d["name"], macs[d["name"]]) for d in nics], extra=netdevs,
            timeout=timeout, booting=f"booting {artifact.directory.name} through QEMU's PVH entry ({machine}, "
                                     f"{accel.upper()}, {mem}), not under Xen")

    # -- doctor -------------------------------------------------------------------------

    def doctor(self) -> Sequence[Check]:
        """What building and running Xen guests needs on this host."""
        return doctor_checks()


def _check_emulated(disks: list[str], nics: list[str], nets: dict[str, str]) -> None:
    """``--emulate`` has no Xen disks, and NICs only on QEMU's user network."""
    if disks:
        raise RunError(f"--emulate boots without Xen, so without its disk front-end: block devices "
                       f"{', '.join(disks)} need a Xen control domain (xl create)")
    elsewhere = [n for n in nics if nets.get(n) != usernet.USER]
    if elsewhere:
        raise RunError(f"--emulate boots without Xen, so without its bridges: put network device "
                       f"{elsewhere[0]} on QEMU's user network (--net {elsewhere[0]}=user, no root) or run "
                       f"under Xen (xl create)")


def doctor_checks(root: Path = Path("/")) -> list[Check]:
    """The xen target's host checks (``root``: where /proc, /dev and /sys are, for tests)."""
    checks: list[Check] = []
    for tool, package in (("apt-get", "apt"), ("dpkg-deb", "dpkg")):
        found = shutil.which(tool)
        checks.append(Check(f"{tool} (the debian kernel provider fetches the guest kernel)", found is not None,
                            found or "not found", fix=f"apt-get install {package}, or build with --kernel PATH",
                            required=False))
    xl = shutil.which("xl")
    checks.append(Check("xl toolstack", xl is not None, xl or "not found", fix="apt-get install xen-utils"))
    why = control_domain(root / "proc/xen/capabilities")
    checks.append(Check("Xen control domain (/proc/xen/capabilities: control_d)", why is None, why or "dom0",
                        fix="boot this host with the Xen hypervisor (apt-get install xen-system-amd64; reboot "
                            "into the Xen entry) and mount xenfs on /proc/xen"))
    privcmd = root / "dev/xen/privcmd"
    checks.append(Check("hypercall device /dev/xen/privcmd", privcmd.exists(),
                        "present" if privcmd.exists() else "absent", fix="modprobe xen-privcmd (in dom0)"))
    euid = os.geteuid()
    checks.append(Check("privileges (xl needs root)", euid == 0, f"euid {euid}", fix="run as root (sudo)"))
    xenstore = root / "dev/xen/xenbus"
    running = any((root / p).exists() for p in ("run/xenstored.pid", "var/run/xenstored.pid"))
    checks.append(Check("xenstored", running, "running" if running else "no xenstored.pid",
                        fix="systemctl start xenstored (or run /usr/sbin/xenstored)", required=xenstore.exists()))
    bridge = root / "sys/class/net" / DEFAULT_BRIDGE / "bridge"
    checks.append(Check(f"bridge {DEFAULT_BRIDGE} (the default for --net DEVICE=BRIDGE)", bridge.is_dir(),
                        "present" if bridge.is_dir() else "absent",
                        fix=f"ip link add {DEFAULT_BRIDGE} type bridge && ip link set {DEFAULT_BRIDGE} up",
                        required=False))
    hotplug = root / "etc/xen/scripts/vif-bridge"
    checks.append(Check("vif hotplug script /etc/xen/scripts/vif-bridge", hotplug.is_file(),
                        "present" if hotplug.is_file() else "absent", fix="apt-get install xen-utils-common",
                        required=False))
    found = shutil.which(os.environ.get("UNIK_QEMU", qemu.QEMU))
    checks.append(Check("qemu-system-x86_64 (for --emulate)", found is not None, found or "not found",
                        fix="apt-get install qemu-system-x86", required=False))
    return checks
