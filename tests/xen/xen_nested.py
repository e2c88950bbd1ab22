"""A real Xen under QEMU: Xen 4.17 and a dom0 from Debian's packages, for tests and benchmarks.

Test infrastructure (tests/xen, and bench/boot.py --xen), not part of the xen target's wheel.

QEMU loads Xen by multiboot (the gunzipped ``xen-4.17-amd64`` ELF) with dom0's kernel
(Debian's generic ``linux-image-amd64``: the cloud kernel lacks ``CONFIG_XEN_DOM0``)
and an initramfs (uncompressed: nothing to inflate under TCG) as modules.  The dom0
initramfs holds busybox, the xl toolstack with its library closure (plus ``libgcc_s``,
which glibc loads at run time), the Xen modules, a ``vif-bridge`` hotplug script of
its own (the packaged one needs bash and more), the guests' files and a script; its
``/init`` mounts xenfs on ``/proc/xen``, starts ``xenstored``, ``xen-init-dom0`` and
``xenconsoled`` (logging guest consoles), runs the script and powers off.

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into
``~/.cache/unik/xen/``; nothing is installed on the host.  Known needs under TCG (QEMU
7.2): ``-M pc -cpu max`` (SVM and HAP, without which PVH guests cannot run: Debian's
Xen has no shadow paging), ``smap=0`` (QEMU's SMAP emulation crashes dom0), and
``tsc_mode = "native"`` in PVH guests' configurations (the emulated SVM lacks NRIPS,
and RDTSCP traps then crash the guest).
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import missing
from unik.cache import cache_dir
from unik.errors import BuildError, RunError
from unik.progress import Progress
from unik_vmimage import cpio
from unik_vmimage.kernels import ModuleSource, scan_modules_tree

XEN_VERSION = "4.17"
DOM0_KERNEL_PACKAGE = "linux-image-amd64"
#: What dom0 needs, beyond the kernel package (resolved from DOM0_KERNEL_PACKAGE).
PACKAGES = (
    f"xen-hypervisor-{XEN_VERSION}-amd64", f"xen-utils-{XEN_VERSION}", "xen-utils-common", "xenstore-utils",
    "libxencall1", "libxendevicemodel1", "libxenevtchn1", "libxenforeignmemory1", "libxengnttab1",
    "libxenhypfs1", f"libxenmisc{XEN_VERSION}", "libxenstore4", "libxentoollog1", "libxentoolcore1",
    "libyajl2", "busybox-static", "ethtool",
)
DOM0_MODULES = ("xen-evtchn", "xenfs", "xen-privcmd", "xen-gntdev", "xen-gntalloc", "xen-netback",
                "xen-blkback", "bridge", "loop")
XEN_BIN = f"usr/lib/xen-{XEN_VERSION}/bin"
#: Programs dom0 runs (xl execs xenconsole for ``-c``), from xen-utils.
PROGRAMS = ("xl", "xenconsole", "xenconsoled", "xenstored", "xen-init-dom0")
XEN_CMDLINE = "console=com1 com1=115200 dom0_mem=1024M dom0_max_vcpus=1 noreboot smap=0"
DOM0_CMDLINE = "console=hvc0 quiet"
READY = "UNIK-DOM0-READY"
DONE = "UNIK-DOM0-DONE"
PR_SET_PDEATHSIG = 1

#: The hotplug script libxl runs for each vif (/etc/xen/scripts/vif-bridge): put the
#: backend interface on its bridge and tell netback it may connect.
VIF_BRIDGE = """#!/bin/sh
# unik's dom0: attach a guest's vif to its bridge (the packaged script needs bash).
set -- "$1" "${XENBUS_PATH#backend/vif/}"
dev="${vif:-vif$(echo "$2" | tr / .)}"
bridge="$(xenstore-read "$XENBUS_PATH/bridge" 2>/dev/null || echo xenbr0)"
case "$1" in
online|add)
    brctl addif "$bridge" "$dev" && ip link set "$dev" up
    # Full checksums towards the guest: frames read from its AF_PACKET ring carry no
    # checksum metadata, so a partial (offloaded) checksum would look corrupt to unik's stack.
    ethtool -K "$dev" tx off >/dev/null
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    echo "vif-bridge: $dev on $bridge" >&2 ;;
offline|remove)
    brctl delif "$bridge" "$dev" 2>/dev/null ;;
esac
exit 0
"""

#: The hotplug script libxl runs for a disk with ``script=block``: a loop device over the
#: file, announced to blkback as ``physical-device`` (hex major:minor).
BLOCK = """#!/bin/sh
# unik's dom0: a file-backed disk through a loop device (the packaged script needs bash).
case "$1" in
add|online)
    file="$(xenstore-read "$XENBUS_PATH/params")"
    loop="$(losetup -f)" && losetup "$loop" "$file" || exit 1
    xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c %t:%T "$loop")" \
        "$XENBUS_PATH/physical-device-path" "$loop"
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    echo "block: $file on $loop" >&2 ;;
remove|offline)
    loop="$(xenstore-read "$XENBUS_PATH/physical-device-path" 2>/dev/null)"
    [ -n "$loop" ] && losetup -d "$loop" ;;
esac
exit 0
"""

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin:/usr/bin:/usr/lib/xen-{version}/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run/xen /run/xenstored /run/lock /var/lib/xen /var/lib/xenstored /var/log/xen/console /tmp
mount -t devpts devpts /dev/pts  # (no tmpfs on /tmp: files of the initramfs may live there)
{modules}
mount -t xenfs xenfs /proc/xen
ip link set lo up
xenstored --pid-file /run/xenstored.pid
xen-init-dom0 >/dev/null
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
echo "{ready} $(cat /proc/xen/capabilities)"
sh /unik/script.sh
echo "{done} $?"
sync
poweroff -f
"""


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _run(cmd: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} is not available (Debian's apt and dpkg are needed)") from None
    if proc.returncode:
        raise BuildError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


@dataclass
class XenHost:
    """Xen, dom0's kernel and modules, and the unpacked packages (``root``)."""

    root: Path
    xen: Path
    dom0_kernel: Path
    modules: ModuleSource


def _kernel_package() -> str:
    info = _run(["apt-cache", "show", "--no-all-versions", DOM0_KERNEL_PACKAGE])
    for line in info.splitlines():
        if line.startswith("Depends:"):
            return line.split(":", 1)[1].split(",")[0].split()[0]
    raise BuildError(f"cannot resolve the kernel package behind {DOM0_KERNEL_PACKAGE}")


def prepare(progress: Progress, base: Path | None = None) -> XenHost:
    """Fetch and unpack the packages once (``~/.cache/unik/xen/<kernel package>``)."""
    base = base or cache_dir() / "xen"
    try:
        kernel_package = _kernel_package()
    except BuildError:
        done = sorted(base.glob("*/.complete"))
        if not done:
            raise
        kernel_package = done[-1].read_text().strip()
    stamp = hashlib.sha256("\n".join(PACKAGES).encode()).hexdigest()[:8]
    root = base / f"{kernel_package}-{stamp}"
    if not (root / ".complete").is_file():
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "debs").mkdir(parents=True)
        with progress.step(f"fetching Xen {XEN_VERSION} and dom0's packages (apt-get download)"):
            _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *PACKAGES, kernel_package],
                 cwd=tmp / "debs")
        with progress.step("unpacking them (dpkg-deb -x)"):
            for deb in sorted((tmp / "debs").glob("*.deb")):
                _run(["dpkg-deb", "-x", str(deb), str(tmp)])
            shutil.rmtree(tmp / "debs")
            xen_gz = next((tmp / "boot").glob(f"xen-{XEN_VERSION}-amd64.gz"))
            (tmp / "boot" / "xen.elf").write_bytes(gzip.decompress(xen_gz.read_bytes()))
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        (root / ".complete").write_text(kernel_package + "\n")
    release = next((root / "lib" / "modules").iterdir()).name
    return XenHost(root, root / "boot" / "xen.elf", root / "boot" / f"vmlinuz-{release}",
                   scan_modules_tree(root / "lib" / "modules" / release))


def library_closure(host: XenHost, binaries: Iterable[Path]) -> dict[str, Path]:
    """The shared libraries of ``binaries`` (from the packages, else the host), by file name."""
    libdir = host.root / "usr/lib/x86_64-linux-gnu"
    env = {**os.environ, "LD_LIBRARY_PATH": str(libdir)}
    libs: dict[str, Path] = {}
    for binary in binaries:
        for line in _run(["ldd", str(binary)], env=env).splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                libs[parts[0]] = Path(parts[2])
            elif parts and parts[0].startswith("/"):
                libs[Path(parts[0]).name] = Path(parts[0])
            elif "not found" in line:
                raise BuildError(f"{binary}: {line.strip()}")
    # glibc loads libgcc_s at run time (pthread_cancel, backtraces): ldd does not list it.
    for candidate in (Path("/lib/x86_64-linux-gnu/libgcc_s.so.1"), Path("/usr/lib/x86_64-linux-gnu/libgcc_s.so.1")):
        if candidate.is_file():
            libs.setdefault("libgcc_s.so.1", candidate)
            break
    return libs


@dataclass
class Dom0Image:
    """The dom0 initramfs and what it holds."""

    path: Path
    bytes: int
    programs: list[str] = field(default_factory=list)
    libraries: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)


def dom0_initramfs(host: XenHost, script: str, files: Mapping[str, Path], out: Path,
                   binaries: Iterable[Path] = ()) -> Dom0Image:
    """Write dom0's initramfs (uncompressed cpio): the toolstack, ``script`` and ``files`` (dest -> source).

    The shared libraries of ``binaries`` (host programs among ``files``) are added too.
    """
    entries: dict[str, cpio.Entry] = {}

    def add(entry: cpio.Entry) -> None:
        parts = entry.name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            entries.setdefault(d, cpio.Entry.directory(d))
        entries[entry.name] = entry

    def add_file(dest: str, source: Path, perm: int = 0o644) -> None:
        add(cpio.Entry.file(dest, source.read_bytes(), perm))

    for d in ("proc", "sys", "dev", "run", "tmp", "etc", "usr/sbin", "usr/bin", "var/log", "var/lib"):
        add(cpio.Entry.directory(d))
    add(cpio.Entry.symlink("lib", "usr/lib"))
    add(cpio.Entry.symlink("var/run", "../run"))
    add(cpio.Entry.symlink("var/lock", "../run/lock"))
    add(cpio.Entry.file("etc/xen/xl.conf", b"# xl's defaults (unik's dom0)\n"))
    add(cpio.Entry.chardev("dev/console", 5, 1))
    add_file("bin/busybox", host.root / "bin/busybox", 0o755)
    programs = [host.root / XEN_BIN / p for p in PROGRAMS]
    for program in programs:
        add_file(f"{XEN_BIN}/{program.name}", program, 0o755)
    add_file("usr/bin/xenstore", host.root / "usr/bin/xenstore", 0o755)
    add_file("usr/sbin/ethtool", host.root / "sbin/ethtool", 0o755)
    for verb in ("read", "write", "ls", "rm", "list"):
        add(cpio.Entry.symlink(f"usr/bin/xenstore-{verb}", "xenstore"))
    libs = library_closure(host, [*programs, host.root / "usr/bin/xenstore", host.root / "sbin/ethtool", *binaries])
    for name, source in sorted(libs.items()):
        dest = "lib64/ld-linux-x86-64.so.2" if name.startswith("ld-linux") else f"usr/lib/x86_64-linux-gnu/{name}"
        add_file(dest, source.resolve(), 0o755)
    names = host.modules.resolve([m.replace("-", "_") for m in DOM0_MODULES])
    for name in names:
        add_file(f"modules/{name}.ko", host.modules.root / host.modules.index[name][0])
    add_file("etc/xen/scripts/vif-bridge", _text(out.with_suffix(".vif-bridge"), VIF_BRIDGE), 0o755)
    add_file("etc/xen/scripts/block", _text(out.with_suffix(".block"), BLOCK), 0o755)
    modules = "\n".join(f"insmod /modules/{n}.ko" for n in names)
    init = INIT.format(version=XEN_VERSION, modules=modules, ready=READY, done=DONE)
    add_file("init", _text(out.with_suffix(".init"), init), 0o755)
    add_file("unik/script.sh", _text(out.with_suffix(".script"), script), 0o755)
    for dest, source in files.items():
        add_file(dest.lstrip("/"), source, 0o755 if os.access(source, os.X_OK) else 0o644)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as f:
        w = cpio.Writer(f)
        for name in sorted(entries):
            w.add(entries[name])
        w.close()
    tmp.replace(out)
    return Dom0Image(out, out.stat().st_size, [p.name for p in programs], sorted(libs), names)


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@dataclass
class NestedRun:
    """The serial console of one Xen-in-QEMU boot, each line with its time since QEMU started."""

    lines: list[tuple[float, str]]
    returncode: int | None

    @property
    def text(self) -> str:
        """The whole console."""
        return "\n".join(line for _, line in self.lines)

    def time_of(self, prefix: str, after: float = 0.0) -> float | None:
        """When the first line starting with (or containing) ``prefix`` came, not before ``after``."""
        for t, line in self.lines:
            if t >= after and prefix in line:
                return t
        return None


def qemu_command(host: XenHost, dom0: Path, qemu: str = "qemu-system-x86_64") -> list[str]:
    """QEMU booting Xen by multiboot, dom0's kernel and initramfs as modules."""
    return [
        qemu, "-M", "pc", "-cpu", "max", "-m", "2048", "-smp", "1", "-accel", "tcg",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
        "-kernel", str(host.xen), "-append", XEN_CMDLINE,
        "-initrd", f"{host.dom0_kernel} {DOM0_CMDLINE},{dom0}",
    ]


def boot(host: XenHost, dom0: Path, *, time_limit: float, silent_limit: float = 120.0,
         echo: bool = False) -> NestedRun:
    """Boot Xen and dom0 under QEMU until dom0 says it is done (or ``time_limit``); QEMU is always killed."""
    qemu = shutil.which(os.environ.get("UNIK_QEMU", "qemu-system-x86_64"))
    if qemu is None:
        raise RunError(missing("qemu-system-x86_64") or "qemu-system-x86_64 is not installed")
    start = time.monotonic()
    proc = subprocess.Popen(qemu_command(host, dom0, qemu), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    assert proc.stdout is not None
    lines: list[tuple[float, str]] = []
    pending = b""
    last = start
    sel = selectors.DefaultSelector()
    try:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if now - start > time_limit:
                raise RunError(f"Xen under QEMU did not finish within {time_limit:g} s; stopped. Console:\n"
                               + "\n".join(line for _, line in lines[-40:]))
            if now - last > silent_limit:
                raise RunError(f"Xen under QEMU printed nothing for {silent_limit:g} s; stopped. Console:\n"
                               + "\n".join(line for _, line in lines[-40:]))
            if not sel.select(timeout=0.2):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            last = time.monotonic()
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace").rstrip("\r")
                lines.append((last - start, line))
                if echo:
                    print(line, flush=True)
            if any(DONE in line for _, line in lines[-len(complete):] if complete):
                break
    finally:
        sel.close()
        proc.kill()
        returncode = proc.wait()
        proc.stdout.close()
    if pending:
        lines.append((time.monotonic() - start, pending.decode(errors="replace")))
    return NestedRun(lines, returncode)


# -- scripts run by dom0, and reading their output ------------------------------------------

XL_CREATE = "UNIK-XL-CREATE"
XL_EXIT = "UNIK-XL-EXIT"
#: Lines ``xl create`` itself prints before the guest's console starts.
XL_OWN = ("Parsing config from", "got a tsc mode string", "Failed to read config file")


def xl_create_console(directory: str, config: str, label: str) -> str:
    """dom0 commands: ``xl create -c`` on ``directory/config``, between markers named ``label``.

    ``xl create -c`` returns when the console closes, which can be before Xen has
    destroyed the domain: a next guest of the same name would then be refused ("already
    exists"), so the commands wait (at most 20 s) until only Domain-0 is listed.
    """
    return (f'cd {directory} && echo "{XL_CREATE} {label}" && xl create -c {config}; '
            f'echo "{XL_EXIT} {label} $?"; '
            'for i in $(seq 100); do [ "$(xl list | wc -l)" -le 2 ] && break; sleep 0.2; done\n')


@dataclass
class Section:
    """What came between one ``xl create`` marker and its exit marker."""

    started: float
    lines: list[tuple[float, str]]
    xl_status: int | None

    @property
    def guest_lines(self) -> list[str]:
        """The console lines, without xl's own."""
        return [line for _, line in self.lines if not line.startswith(XL_OWN)]

    def first_guest_line_s(self) -> float | None:
        """Seconds from ``xl create`` to the guest's first console line."""
        for t, line in self.lines:
            if line.strip() and not line.startswith(XL_OWN):
                return t - self.started
        return None

    def line_s(self, text: str) -> float | None:
        """Seconds from ``xl create`` to the first guest line containing ``text``."""
        for t, line in self.lines:
            if text in line and not line.startswith(XL_OWN):
                return t - self.started
        return None


def section(run: NestedRun, label: str) -> Section | None:
    """The ``xl create -c`` run labelled ``label`` in ``run`` (``None``: it never started)."""
    start: float | None = None
    lines: list[tuple[float, str]] = []
    for t, line in run.lines:
        if start is None:
            if line.strip() == f"{XL_CREATE} {label}":
                start = t
            continue
        if line.startswith(f"{XL_EXIT} {label} "):
            return Section(start, lines, int(line.split()[-1]))
        lines.append((t, line))
    return Section(start, lines, None) if start is not None else None
