"""The ``source`` kernel provider: a Linux kernel built for one plan (Lupine-style).

Lupine Linux showed that a general-purpose kernel configured down to what one
application needs boots faster and is much smaller.  This provider does that for a unik
plan:

1. Debian's ``linux-source-6.1`` package is fetched with ``apt-get download`` and
   unpacked (``dpkg-deb`` + ``tar``) into ``~/.cache/unik/kernels/source/`` — nothing is
   installed on the host.
2. The configuration starts from ``make tinyconfig`` and adds only what a unik guest
   uses (:data:`BASE_OPTIONS`: ELF, the serial console, ``/proc`` for the command line,
   devtmpfs, futexes/epoll/eventfd for CPython and asyncio, AF_PACKET with its
   memory-mapped TPACKET_V3 ring, AF_UNIX), the options of the plan's devices
   (:data:`MODULE_OPTIONS`: virtio-net, virtio-blk, virtio-rng, the PCI and MMIO
   transports) and the decompressor of the chosen initramfs compression.  Everything is
   built in (``CONFIG_MODULES`` is off), so the image carries no ``.ko`` files.
3. The kernel is built out of tree (``nice make bzImage``), with its progress reported,
   and cached by the hash of the source version, the final configuration and the
   compiler: the same plan never builds twice.

Building takes minutes (about a thousand files); it needs ``gcc``, ``make``, ``flex``,
``bison``, ``bc``, ``perl``, ``lz4`` and libelf's headers (``libelf-dev``, for objtool) on
the host, and :func:`missing_tools` says which are absent.  ``make test`` does not
depend on it (``make test-kernel`` does).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from unik.cache import cache_dir
from unik.errors import BuildError
from unik.progress import Progress

from .kernels import Kernel, ModuleSource

#: The Debian package holding the kernel sources (a tarball under /usr/src).
SOURCE_PACKAGE = "linux-source-6.1"
TOOLS = ("gcc", "make", "flex", "bison", "bc", "perl", "lz4", "apt-get", "dpkg-deb", "tar", "xz")
#: Headers the build needs (objtool links libelf), with their Debian packages.
HEADERS = {"/usr/include/gelf.h": "libelf-dev"}

#: What every unik guest needs from the kernel, on top of ``tinyconfig``.
BASE_OPTIONS: dict[str, str] = {
    # the machine: 64-bit, one or two vCPUs, the timers QEMU's q35/microvm give
    "64BIT": "y", "SMP": "n", "X86_LOCAL_APIC": "y", "X86_IO_APIC": "y", "X86_TSC": "y",
    "HPET_TIMER": "y", "HIGH_RES_TIMERS": "y", "ACPI": "y", "PCI": "y", "PCI_MSI": "y",
    "HYPERVISOR_GUEST": "y", "PARAVIRT": "y", "KVM_GUEST": "y",
    # PVH entry point: QEMU and Xen can boot the ELF vmlinux directly
    "PVH": "y",
    # a small, fast kernel: no unwinder tables, no mitigations, no modules
    "UNWINDER_GUESS": "y", "MODULES": "n", "KERNEL_LZ4": "y", "CC_OPTIMIZE_FOR_PERFORMANCE": "y",
    # the init reports the exit status through QEMU's isa-debug-exit port (ioperm)
    "X86_IOPL_IOPERM": "y",
    # booting: the initramfs, ELF binaries, the console on the serial port, panics visible
    "BLK_DEV_INITRD": "y", "BINFMT_ELF": "y", "BINFMT_SCRIPT": "y", "PRINTK": "y", "BUG": "y",
    "TTY": "y", "SERIAL_8250": "y", "SERIAL_8250_CONSOLE": "y",
    # what the init and CPython use: /proc/cmdline, devtmpfs, /sys, futex, epoll & co.
    "PROC_FS": "y", "SYSFS": "y", "DEVTMPFS": "y", "TMPFS": "y", "SHMEM": "y", "FUTEX": "y",
    "EPOLL": "y", "SIGNALFD": "y", "TIMERFD": "y", "EVENTFD": "y", "POSIX_TIMERS": "y",
    "MULTIUSER": "y", "ADVISE_SYSCALLS": "y", "MEMBARRIER": "y", "RSEQ": "y", "FILE_LOCKING": "y",
    # random: the init seeds /dev/urandom; getrandom for CPython
    "HW_RANDOM": "y",
    # the network: unik's stack owns the NIC through AF_PACKET (TPACKET_V3 ring); AF_UNIX
    # for socketpair(); no IPv4 in the kernel's stack is needed
    "NET": "y", "PACKET": "y", "UNIX": "y", "NETDEVICES": "y", "NET_CORE": "y",
    "VIRTIO_MENU": "y",
}

#: What Firecracker needs of a guest kernel, built in with the MMIO transport (every virtio
#: image has it): virtio over MMIO, its devices found from the kernel command line
#: (Firecracker appends ``virtio_mmio.device=`` for each; Debian's cloud kernel lacks
#: ``VIRTIO_MMIO_CMDLINE_DEVICES``, so with it the devices are found only through the ACPI
#: tables of Firecracker 1.10 and later), ACPI for those tables, the MP table through which
#: Firecracker without ACPI describes the vCPUs, the 8250 serial console (``ttyS0``), the KVM
#: paravirtual clock and the PVH entry of the ELF ``vmlinux`` it boots.
FIRECRACKER_OPTIONS: dict[str, str] = {
    "VIRTIO": "y", "VIRTIO_MMIO": "y", "VIRTIO_MMIO_CMDLINE_DEVICES": "y", "ACPI": "y", "X86_MPPARSE": "y",
    "SERIAL_8250": "y", "SERIAL_8250_CONSOLE": "y", "KVM_GUEST": "y", "PVH": "y",
}

#: Kernel options that build in what a module name of the plan stands for.
MODULE_OPTIONS: dict[str, dict[str, str]] = {
    "virtio_pci": {"VIRTIO": "y", "VIRTIO_PCI": "y", "VIRTIO_PCI_LEGACY": "n"},
    "virtio_mmio": FIRECRACKER_OPTIONS,
    "virtio_net": {"VIRTIO_NET": "y"},
    "virtio_blk": {"BLOCK": "y", "BLK_DEV": "y", "VIRTIO_BLK": "y"},
    "virtio_rng": {"HW_RANDOM": "y", "HW_RANDOM_VIRTIO": "y"},
    "virtio_console": {"VIRTIO_CONSOLE": "y"},
    "af_packet": {"PACKET": "y"},
    # the ACPI power button: QEMU's system_powerdown reaches the init as an ACPI event
    "button": {"INPUT": "y", "ACPI_BUTTON": "y"},
}

#: The kernel's initramfs decompressor for each compression unik-lib-vmimage writes.
COMPRESSION_OPTIONS: dict[str, dict[str, str]] = {
    "gzip": {"RD_GZIP": "y"}, "xz": {"RD_XZ": "y"}, "zstd": {"RD_ZSTD": "y"}, "none": {},
}


def missing_tools() -> list[str]:
    """The host tools (and header packages) a kernel build needs that are missing."""
    return [t for t in TOOLS if shutil.which(t) is None] + [p for h, p in HEADERS.items() if not os.path.exists(h)]


def options_for(modules: Iterable[str], compression: str) -> dict[str, str]:
    """The configuration fragment for a plan needing ``modules`` and ``compression``."""
    out = dict(BASE_OPTIONS)
    for name in dict.fromkeys(m.replace("-", "_") for m in modules):
        if name not in MODULE_OPTIONS:
            raise BuildError(f"--kernel source does not know how to build in kernel module {name!r} "
                             f"(known: {', '.join(sorted(MODULE_OPTIONS))})")
        out.update(MODULE_OPTIONS[name])
    if compression not in COMPRESSION_OPTIONS:
        raise BuildError(f"--kernel source: no initramfs decompressor for {compression!r}")
    out.update(COMPRESSION_OPTIONS[compression])
    return dict(sorted(out.items()))


def fragment_text(options: Mapping[str, str]) -> str:
    """``options`` as a Kconfig fragment (``n`` written as ``# CONFIG_X is not set``)."""
    lines = []
    for name, value in sorted(options.items()):
        lines.append(f"# CONFIG_{name} is not set" if value == "n" else f"CONFIG_{name}={value}")
    return "\n".join(lines) + "\n"


def read_config(text: str) -> dict[str, str]:
    """A ``.config``'s options: ``{"VIRTIO_NET": "y", "MODULES": "n", ...}``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^CONFIG_(\w+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^# CONFIG_(\w+) is not set$", line)
        if m:
            out[m.group(1)] = "n"
    return out


def unmet(wanted: Mapping[str, str], config: Mapping[str, str]) -> list[str]:
    """Options of ``wanted`` that the final configuration does not have as asked."""
    return [f"CONFIG_{k}={v} (got {config.get(k, 'n')})" for k, v in sorted(wanted.items())
            if config.get(k, "n") != v]


def _compiler() -> str:
    try:
        return subprocess.run(["gcc", "--version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return "gcc?"


def _check(cmd: list[str], cwd: Path, log: Path, timeout: float) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise BuildError(f"{' '.join(cmd)} failed (log {log}):\n" + "\n".join(tail))


class SourceTree:
    """The unpacked kernel sources, fetched once into the cache."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def version(self) -> str:
        """The Debian version of the source package (``apt-cache``), or the cached one."""
        marker = self.root / "source.json"
        try:
            out = subprocess.run(["apt-cache", "show", "--no-all-versions", SOURCE_PACKAGE], capture_output=True,
                                 text=True, timeout=60).stdout
            m = re.search(r"^Version: (\S+)", out, re.M)
            if m:
                return m.group(1)
        except (OSError, subprocess.SubprocessError):
            pass
        if marker.is_file():
            return str(json.loads(marker.read_text())["version"])
        raise BuildError(f"cannot find the Debian package {SOURCE_PACKAGE} (apt-cache show)")

    def ensure(self, progress: Progress) -> tuple[Path, str]:
        """The source directory and its version, downloading and unpacking if needed."""
        version = self.version()
        tree = self.root / f"linux-source-{version}"
        if (tree / "Makefile").is_file() and (tree / ".unik-complete").is_file():
            return tree, version
        dl = self.root / "dl"
        dl.mkdir(parents=True, exist_ok=True)
        debs = sorted(dl.glob(f"{SOURCE_PACKAGE}_{version.replace(':', '%3a')}_*.deb"))
        if not debs:
            with progress.step(f"fetching {SOURCE_PACKAGE} {version} (about 140 MB)"):
                proc = subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
                                       f"{SOURCE_PACKAGE}={version}"], cwd=dl, capture_output=True, text=True,
                                      timeout=1800)
                if proc.returncode != 0:
                    raise BuildError(f"apt-get download {SOURCE_PACKAGE} failed: {proc.stderr.strip()}")
            debs = sorted(dl.glob(f"{SOURCE_PACKAGE}_*.deb"))
        if not debs:
            raise BuildError(f"apt-get download {SOURCE_PACKAGE} produced no package")
        tmp = self.root / f"unpack-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with progress.step(f"unpacking {debs[-1].name}"):
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], check=True, timeout=1800)
            tarballs = sorted((tmp / "usr" / "src").glob("linux-source-*.tar.*"))
            if not tarballs:
                raise BuildError(f"{debs[-1].name} holds no /usr/src/linux-source-*.tar.*")
            with tarfile.open(tarballs[0]) as tar:
                tar.extractall(tmp / "src", filter="tar")
            top = next((tmp / "src").iterdir())
            (top / ".unik-complete").write_text(version + "\n")
            shutil.rmtree(tree, ignore_errors=True)
            top.rename(tree)
            shutil.rmtree(tmp, ignore_errors=True)
        (self.root / "source.json").write_text(json.dumps({"version": version}) + "\n")
        return tree, version


def _make(tree: Path, build: Path) -> list[str]:
    return ["nice", "-n", "10", "make", "-C", str(tree), f"O={build}", "ARCH=x86_64", "LOCALVERSION=-unik"]


def configure(tree: Path, build: Path, wanted: Mapping[str, str], log: Path) -> dict[str, str]:
    """``tinyconfig`` plus ``wanted`` in ``build`` (out of ``tree``); the final options.

    A :class:`BuildError` names every option of ``wanted`` Kconfig did not keep (a
    dependency missing).
    """
    build.mkdir(parents=True, exist_ok=True)
    (build / "unik.fragment").write_text(fragment_text(wanted))
    make = _make(tree, build)
    _check([*make, "tinyconfig"], tree, log, 600)
    _check([str(tree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build), str(build / ".config"),
            str(build / "unik.fragment")], tree, log, 600)
    _check([*make, "olddefconfig"], tree, log, 600)
    config = read_config((build / ".config").read_text())
    problems = unmet(wanted, config)
    if problems:
        raise BuildError("the kernel configuration does not hold what the plan needs:\n  " + "\n  ".join(problems))
    return config


def build_kernel(modules: Iterable[str], compression: str, progress: Progress,
                 root: Path, jobs: int | None = None, timeout: float = 4 * 3600) -> tuple[Path, dict[str, object]]:
    """The bzImage for a plan (built, or from the cache) and its description."""
    missing = missing_tools()
    if missing:
        raise BuildError(f"--kernel source needs {', '.join(missing)} on the host "
                         f"(apt-get install {' '.join(missing)})")
    wanted = options_for(modules, compression)
    tree, version = SourceTree(root).ensure(progress)
    key = hashlib.sha256(f"{version}\0{_compiler()}\0{fragment_text(wanted)}".encode()).hexdigest()[:16]
    out = root / "kernels" / key
    if (out / "kernel.json").is_file():
        return out / "bzImage", json.loads((out / "kernel.json").read_text())
    build = root / "build" / key
    build.mkdir(parents=True, exist_ok=True)
    log = build / "build.log"
    log.write_text("")
    with progress.step("configuring the kernel (tinyconfig + the plan's options)"):
        configure(tree, build, wanted, log)
    make = _make(tree, build)
    jobs = jobs or os.cpu_count() or 1
    started = time.monotonic()
    with progress.step(f"building the kernel ({version}, -j{jobs}; log {log})"):
        _make_with_progress([*make, f"-j{jobs}", "bzImage"], tree, log, progress, timeout)
    seconds = time.monotonic() - started
    release = (build / "include/config/kernel.release").read_text().strip()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(build / "arch/x86/boot/bzImage", tmp / "bzImage")
    shutil.copyfile(build / ".config", tmp / "config")
    info: dict[str, object] = {
        "source": f"{SOURCE_PACKAGE} {version}", "release": release, "options": wanted,
        "build_seconds": round(seconds, 1), "bytes": (tmp / "bzImage").stat().st_size,
        "vmlinux_bytes": (build / "vmlinux").stat().st_size,
    }
    (tmp / "kernel.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    shutil.copyfile(log, tmp / "build.log")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    shutil.rmtree(build, ignore_errors=True)  # hundreds of MB of objects: the cache keeps the kernel
    return out / "bzImage", info


def _make_with_progress(cmd: list[str], cwd: Path, log: Path, progress: Progress, timeout: float) -> None:
    """Run make, writing its output to ``log`` and a line every 100 compiled files."""
    deadline = time.monotonic() + timeout
    compiled = 0
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                if line.lstrip().startswith("CC "):
                    compiled += 1
                    if compiled % 100 == 0:
                        progress.info(f"kernel build: {compiled} files compiled")
                if time.monotonic() > deadline:
                    proc.kill()
                    raise BuildError(f"the kernel build took longer than {timeout:.0f}s (log {log})")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise BuildError(f"the kernel build failed (log {log}):\n" + "\n".join(tail))


class PlanKernel(Kernel):
    """The ``source`` provider's kernel: built for the plan by :meth:`specialise`."""

    #: ``kernel.json`` of the build (options, build time, sizes), once built.
    built: dict[str, object] | None = None

    def specialise(self, modules: Sequence[str], compression: str, progress: Progress) -> None:
        """Configure and build (or take from the cache) the kernel for ``modules``."""
        image, info = build_kernel(modules, compression, progress, cache_dir() / "kernels" / "source")
        self.image = image
        self.version = str(info["release"])
        self.modules = ModuleSource(frozenset(m.replace("-", "_") for m in modules), {}, image.parent)
        self.built = info

    def module_files(self, names: Iterable[str], progress: Progress) -> list[Path]:
        """None: everything the plan needs is built in."""
        if self.version == "unbuilt":
            raise BuildError("--kernel source: the kernel is built by specialise() before its modules are asked for")
        return []
