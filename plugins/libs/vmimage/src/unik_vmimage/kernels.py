"""Kernel providers: where a VM image's Linux kernel and its modules come from.

A kernel provider is a class with a ``PLUGIN_NAME`` registered through the
``unik_register_kernels`` hook.  :meth:`KernelProvider.kernel` returns a
:class:`Kernel`: the bootable image and a :class:`ModuleSource` that answers which
modules are built in and hands out the files of the others (with their dependencies,
in load order) — so an image carries only the modules its plan needs.

The providers here:

* ``debian`` — Debian's cloud kernel (``linux-image-cloud-amd64``, or the package
  named after ``debian:``), fetched with ``apt-get download`` into
  ``~/.cache/unik/kernels/debian/``; nothing is installed on the host.  The kernel is
  extracted once; modules are extracted when a plan first needs them.
* ``path`` — a kernel the user gives (``--kernel /boot/vmlinuz-6.1.0``), with its
  modules from ``--kernel-modules DIR`` (a ``/lib/modules/VERSION`` tree) if any.
* ``source`` — a kernel built from Debian's ``linux-source-6.1`` with a configuration
  specialised to the plan (Lupine-style: ``tinyconfig`` plus the plan's drivers, all
  built in), cached by its configuration; see :mod:`unik_vmimage.source_kernel`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar

from unik.cache import cache_dir, write_atomic
from unik.errors import BuildError
from unik.lockfile import LOCK_FILE, LockFile
from unik.progress import Progress, counted

#: The Debian package the ``debian`` provider uses unless told otherwise.
DEBIAN_PACKAGE = "linux-image-cloud-amd64"


def module_name(filename: str) -> str:
    """The kernel's name for a module file: ``virtio-rng.ko`` -> ``virtio_rng``."""
    return Path(filename).name.split(".", 1)[0].replace("-", "_")


def modinfo_depends(data: bytes) -> list[str]:
    """The ``depends=`` list of a module's ``.modinfo`` ELF section."""
    if data[:4] != b"\x7fELF" or data[4] != 2:  # ELF64 only
        raise BuildError("not an ELF64 kernel module")
    endian = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _t, _f, _a, off, size = struct.unpack_from(endian + "IIQQQQ", data, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end] == b".modinfo":
            for entry in data[off:off + size].split(b"\0"):
                if entry.startswith(b"depends="):
                    return [d for d in entry[8:].decode().split(",") if d]
            return []
    return []


@dataclass
class ModuleSource:
    """The modules of one kernel: which are built in, and the files of the others.

    ``index`` maps a module name to its path relative to the modules tree and its
    dependencies; ``fetch`` makes the files of the named modules available on disk.
    """

    builtin: frozenset[str]
    index: dict[str, tuple[str, tuple[str, ...]]]
    root: Path

    def resolve(self, names: Iterable[str]) -> list[str]:
        """``names`` and their dependencies that are not built in, in load order."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str, chain: tuple[str, ...]) -> None:
            name = name.replace("-", "_")
            if name in seen or name in self.builtin:
                return
            if name not in self.index:
                why = f" (needed by {chain[-1]})" if chain else ""
                raise BuildError(f"the kernel has no module {name!r}{why}, neither built in nor loadable")
            seen.add(name)
            for dep in self.index[name][1]:
                visit(dep, (*chain, name))
            order.append(name)

        for n in names:
            visit(n, ())
        return order

    def fetch(self, names: Sequence[str], progress: Progress) -> list[Path]:
        """Paths of the module files for ``names`` (already resolved), in that order."""
        return [self.root / self.index[n][0] for n in names]


@dataclass
class Kernel:
    """A bootable kernel and its modules."""

    image: Path
    version: str
    provider: str
    modules: ModuleSource = field(default_factory=lambda: ModuleSource(frozenset(), {}, Path("/")))
    #: Whether an absent module may be assumed built in (a user's kernel without modules).
    assume_builtin: bool = False
    #: What pins exactly this kernel in ``unik.lock`` (``None``: it cannot be pinned).
    pin: dict[str, str] | None = None

    def specialise(self, modules: Sequence[str], compression: str, progress: Progress) -> None:
        """Adapt the kernel to a plan needing ``modules`` and ``compression`` before it is used.

        A no-op for ready-made kernels; a kernel built from source is configured and
        built (or taken from the cache) here.
        """

    def module_files(self, names: Iterable[str], progress: Progress) -> list[Path]:
        """The files to load for ``names`` (dependencies first), none for built-in ones."""
        wanted = list(names)
        if self.assume_builtin:
            wanted = [n for n in wanted if n.replace("-", "_") in self.modules.index]
        return self.modules.fetch(self.modules.resolve(wanted), progress)


class KernelProvider:
    """Base class of kernel providers (registered through ``unik_register_kernels``)."""

    PLUGIN_NAME: ClassVar[str]
    description: ClassVar[str] = ""

    def kernel(self, argument: str | None, modules_dir: str | None, progress: Progress,
               pin: dict[str, str] | None = None) -> Kernel:
        """The kernel for ``--kernel NAME[:ARGUMENT]`` (``modules_dir`` from ``--kernel-modules``).

        ``pin`` is what ``unik.lock`` recorded from an earlier :attr:`Kernel.pin`: the
        provider returns exactly that kernel, or a :class:`BuildError` saying how to
        update the pin.
        """
        raise NotImplementedError


# -- path ---------------------------------------------------------------------------


def scan_modules_tree(root: Path) -> ModuleSource:
    """Index a ``/lib/modules/VERSION`` tree (``modules.builtin`` and every ``.ko``)."""
    builtin: set[str] = set()
    listed = root / "modules.builtin"
    if listed.is_file():
        builtin = {module_name(line) for line in listed.read_text().split() if line}
    index: dict[str, tuple[str, tuple[str, ...]]] = {}
    for path in sorted(root.rglob("*.ko")):
        index[module_name(path.name)] = (
            path.relative_to(root).as_posix(), tuple(modinfo_depends(path.read_bytes())),
        )
    return ModuleSource(frozenset(builtin), index, root)


class PathKernel(KernelProvider):
    """A kernel image the user gives, with an optional modules tree."""

    PLUGIN_NAME = "path"
    description = "a kernel you give: --kernel /path/to/bzImage [--kernel-modules /lib/modules/VERSION]"

    def kernel(self, argument: str | None, modules_dir: str | None, progress: Progress,
               pin: dict[str, str] | None = None) -> Kernel:
        """The image at ``argument``; its modules from ``modules_dir`` when given; pinned by its digest."""
        if not argument:
            raise BuildError("--kernel path:FILE needs the kernel image's path")
        image = Path(argument).expanduser().resolve()
        if not image.is_file():
            raise BuildError(f"--kernel: {image} does not exist")
        digest = file_digest(image)
        if pin is not None and pin.get("sha256") != digest:
            raise BuildError(f"the kernel {image} is not the one {LOCK_FILE} pins (sha256 {pin.get('sha256')}, "
                             f"now {digest}): restore it, or accept it with `unik build --update-kernel`")
        found = {"file": str(image), "sha256": digest}
        if modules_dir:
            root = Path(modules_dir).expanduser().resolve()
            if not root.is_dir():
                raise BuildError(f"--kernel-modules: {root} is not a directory")
            return Kernel(image, root.name, self.PLUGIN_NAME, scan_modules_tree(root), pin=found)
        return Kernel(image, image.name, self.PLUGIN_NAME, assume_builtin=True, pin=found)


# -- source -------------------------------------------------------------------------


class SourceKernel(KernelProvider):
    """A kernel built from source, configured for the plan (Lupine-style)."""

    PLUGIN_NAME = "source"
    description = ("a kernel built from Debian's linux-source with only the plan's drivers, built in "
                   "(minutes the first time, then cached)")

    def kernel(self, argument: str | None, modules_dir: str | None, progress: Progress,
               pin: dict[str, str] | None = None) -> Kernel:
        """A kernel that is built for the plan when :meth:`Kernel.specialise` is called.

        It is not pinned: its configuration follows the plan, and its source is Debian's
        ``linux-source`` package of the host.
        """
        from .source_kernel import PlanKernel, missing_tools

        missing = missing_tools()
        if missing:
            raise BuildError(f"--kernel source needs {', '.join(missing)} on the host "
                             f"(apt-get install {' '.join(missing)})")
        return PlanKernel(cache_dir() / "kernels" / "source" / "pending", "unbuilt", self.PLUGIN_NAME,
                          assume_builtin=True)


# -- debian -------------------------------------------------------------------------


def _run(cmd: Sequence[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise BuildError(
            f"{cmd[0]} is not available: the debian kernel provider needs Debian's apt and dpkg "
            "(or use --kernel /path/to/bzImage)"
        ) from None
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith(" "):
            key, value = line.split(":", 1)
            out.setdefault(key.strip(), value.strip())
    return out


class DebianKernel(KernelProvider):
    """Debian's cloud kernel, fetched and cached without installing anything."""

    PLUGIN_NAME = "debian"
    description = f"Debian's cloud kernel ({DEBIAN_PACKAGE}), fetched with apt-get download and cached"

    def resolve(self, package: str) -> tuple[str, str]:
        """The concrete kernel package and version behind ``package`` (a metapackage)."""
        for _ in range(3):  # metapackage -> versioned image package
            info = _fields(_run(["apt-cache", "show", "--no-all-versions", package]))
            depends = info.get("Depends", "")
            if "vmlinuz" in info.get("Description", "") or not depends.startswith("linux-image-"):
                return package, info.get("Version", "")
            package = depends.split(",")[0].split(" ")[0]
        raise BuildError(f"cannot resolve the Debian kernel package behind {package!r}")

    def kernel(self, argument: str | None, modules_dir: str | None, progress: Progress,
               pin: dict[str, str] | None = None) -> Kernel:
        """Fetch (once) and return the kernel of ``argument`` (default: the cloud kernel), or the pinned one."""
        wanted = argument or DEBIAN_PACKAGE
        root = cache_dir() / "kernels" / "debian"
        if pin is not None:
            return self._pinned(root, pin, progress)
        try:
            package, version = self.resolve(wanted)
        except BuildError:
            cached = sorted(root.glob(f"{wanted}_*/kernel.json")) or sorted(root.glob("*/kernel.json"))
            if not cached:
                raise
            data = json.loads(cached[-1].read_text())
            package, version = data["package"], data["version"]
        directory = root / f"{package}_{version}"
        if not (directory / "kernel.json").is_file():
            self._fetch(package, version, directory, progress)
        return self._load(directory)

    def _pinned(self, root: Path, pin: dict[str, str], progress: Progress) -> Kernel:
        """Exactly the package, version and digest of ``pin``, fetched again if the cache lost it."""
        package, version = pin.get("package", ""), pin.get("version", "")
        if not package or not version:
            raise BuildError(f"{LOCK_FILE}: the debian kernel's pin needs package and version: "
                             "run `unik build --update-kernel` to record it again")
        directory = root / f"{package}_{version}"
        if not (directory / "kernel.json").is_file():
            try:
                self._fetch(package, version, directory, progress)
            except BuildError as exc:
                raise BuildError(f"{LOCK_FILE} pins the guest kernel {package} {version}, which cannot be "
                                 f"fetched any more ({exc}): run `unik build --update-kernel` to move to the "
                                 "current one") from None
        kernel = self._load(directory)
        if kernel.pin is not None and kernel.pin.get("sha256") != pin.get("sha256"):
            raise BuildError(f"the fetched {package} {version} is not the package {LOCK_FILE} pins (sha256 "
                             f"{pin.get('sha256')}, fetched {kernel.pin.get('sha256')}): the archive changed it; "
                             "check the source, then run `unik build --update-kernel` to accept it")
        return kernel

    def _load(self, directory: Path) -> Kernel:
        data = json.loads((directory / "kernel.json").read_text())
        if "sha256" not in data:  # cached before kernels were pinned
            data["sha256"] = file_digest(directory / "package.deb")
            write_atomic(directory / "kernel.json", json.dumps(data, indent=1, sort_keys=True) + "\n")
        modules = _DebianModules(
            frozenset(data["builtin"]), {k: (v[0], tuple(v[1])) for k, v in data["modules"].items()},
            directory / "modules", directory,
        )
        pin = {"package": data["package"], "version": data["version"], "sha256": data["sha256"]}
        return Kernel(directory / "vmlinuz", data["release"], self.PLUGIN_NAME, modules, pin=pin)

    def _fetch(self, package: str, version: str, directory: Path, progress: Progress) -> None:
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with progress.step(f"fetching Debian kernel {package} {version}"):
            try:
                _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{package}={version}"],
                     cwd=tmp)
            except BuildError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        debs = sorted(tmp.glob("*.deb"))
        if not debs:
            raise BuildError(f"apt-get download {package} produced no package")
        debs[0].rename(tmp / "package.deb")
        builtin: set[str] = set()
        modules: dict[str, list[object]] = {}
        release = ""
        with progress.step("indexing the kernel and its modules"):
            for member, read in _deb_members(tmp / "package.deb"):
                name = member.name
                if "/boot/vmlinuz-" in name:
                    release = name.rsplit("vmlinuz-", 1)[1]
                    (tmp / "vmlinuz").write_bytes(read())
                elif "/boot/config-" in name:
                    (tmp / "config").write_bytes(read())
                elif name.endswith("/modules.builtin"):
                    builtin = {module_name(line) for line in read().decode().split() if line}
                elif name.endswith(".ko"):
                    rel = name.split("/kernel/", 1)[1] if "/kernel/" in name else Path(name).name
                    modules[module_name(name)] = [rel, modinfo_depends(read())]
        if not release:
            raise BuildError(f"{package} holds no /boot/vmlinuz-*")
        data = {"package": package, "version": version, "release": release, "sha256": file_digest(tmp / "package.deb"),
                "builtin": sorted(builtin), "modules": dict(sorted(modules.items()))}
        (tmp / "kernel.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)


def _deb_members(deb: Path) -> Iterable[tuple[tarfile.TarInfo, _Reader]]:
    """Regular files of a .deb's data archive, streamed through ``dpkg-deb --fsys-tarfile``.

    A reader that stops early (it found what it wanted) closes the pipe: dpkg-deb then
    fails with a broken pipe, which is no error here.
    """
    try:
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise BuildError("dpkg-deb is not available: the debian kernel provider needs it") from None
    assert proc.stdout is not None and proc.stderr is not None
    stream: IO[bytes] = proc.stdout
    complete = False
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    yield member, _Reader(tar, member)
        complete = True
    finally:
        stream.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        if proc.wait() != 0 and complete:
            raise BuildError(f"dpkg-deb --fsys-tarfile {deb} failed: {err or 'no message'}")


class _Reader:
    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self._tar, self._member = tar, member

    def __call__(self) -> bytes:
        f = self._tar.extractfile(self._member)
        return f.read() if f is not None else b""


class _DebianModules(ModuleSource):
    """Modules of a cached Debian kernel package, extracted the first time they are needed."""

    def __init__(
        self, builtin: frozenset[str], index: dict[str, tuple[str, tuple[str, ...]]], root: Path, package: Path,
    ) -> None:
        super().__init__(builtin, index, root)
        self._package = package

    def fetch(self, names: Sequence[str], progress: Progress) -> list[Path]:
        """Extract the modules not yet in the cache from the cached package, then list them."""
        paths = [self.root / self.index[n][0] for n in names]
        missing = {self.index[n][0] for n, p in zip(names, paths, strict=True) if not p.is_file()}
        if missing:
            with progress.step(f"extracting {counted(len(missing), 'kernel module')}"):
                for member, read in _deb_members(self._package / "package.deb"):
                    rel = member.name.split("/kernel/", 1)[-1]
                    if rel in missing:
                        dest = self.root / rel
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        tmp = dest.with_name(dest.name + ".tmp")
                        tmp.write_bytes(read())
                        tmp.replace(dest)
                        missing.discard(rel)
                        if not missing:
                            break
            if missing:
                raise BuildError(f"modules missing from the kernel package: {', '.join(sorted(missing))}")
        return paths


KERNEL_PROVIDERS: list[type[KernelProvider]] = [DebianKernel, PathKernel, SourceKernel]


def parse_kernel_spec(spec: str) -> tuple[str, str | None]:
    """``debian`` -> (debian, None); ``debian:PKG``; ``/boot/vmlinuz`` -> (path, /boot/vmlinuz)."""
    if "/" in spec and not spec.startswith(("debian:", "source:")) and not spec.startswith("path:"):
        return "path", spec
    name, _, arg = spec.partition(":")
    return name, arg or None


def find_kernel(
    spec: str, providers: dict[str, type[KernelProvider]], modules_dir: str | None, progress: Progress,
    lock: LockFile | None = None, update: bool = False,
) -> Kernel:
    """The kernel named by ``--kernel SPEC`` among the installed ``providers``.

    With ``lock`` (the project's ``unik.lock``) the kernel pinned for ``SPEC`` is used
    exactly; the first build, or one with ``update`` (``unik build --update-kernel``),
    records what it used.
    """
    name, argument = parse_kernel_spec(spec)
    if name not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise BuildError(f"--kernel {spec}: no kernel provider {name!r} (installed: {known}, or a path)")
    pin = lock.get("kernel", spec) if lock is not None and not update else None
    kernel = providers[name]().kernel(argument, modules_dir, progress, pin=pin)
    if lock is not None and kernel.pin is not None and kernel.pin != pin:
        before = lock.get("kernel", spec)
        lock.set("kernel", spec, kernel.pin)
        what = " ".join(kernel.pin.get(k, "") for k in ("package", "version", "file") if k in kernel.pin)
        if before is None:
            progress.info(f"pinned the guest kernel in {lock.path}: {what}")
        elif before != kernel.pin:
            was = " ".join(before.get(k, "") for k in ("package", "version", "file") if k in before)
            progress.info(f"updated the guest kernel in {lock.path}: {was} -> {what}")
    return kernel


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
