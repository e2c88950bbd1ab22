"""The initramfs of a unik VM image: init, CPython, what it loads, the application.

Layout inside the image::

    /init                       the static C init (unik-init)
    /unik/init.conf             what the init does (modules, mounts, links, the command)
    /dev/{console,null,urandom,hwrng,ttyS1} the nodes needed before anything is mounted
    /lib/modules/NAME.ko        the kernel modules the plan needs, in load order
    /usr/bin/python3            this host's CPython (the one running unik)
    <library paths>             the shared libraries it and its extensions load, at their
                                host paths in the loader's own directories, others (an
                                interpreter's libpython) in /usr/lib; stripped
    /usr/lib/pythonX.Y/         the standard-library modules the application reaches
                                (:mod:`unik_vmimage.imports`), precompiled, sourceless
    /app/                       main.py, plan.json, the application, unik and its plugins,
                                baked files; .py kept beside unchecked-hash .pyc files

Everything is sorted and timestamped ``SOURCE_DATE_EPOCH`` (else 0), compiled with a
fixed hash seed, ELF files stripped with a build ID of their content
(:mod:`unik.reproducible`), compressed without other timestamps: the same inputs give
the same bytes, wherever the project, the checkout and the interpreter are.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from unik.bundle import BundleFile
from unik.cache import cache_dir
from unik.errors import BuildError
from unik.progress import Progress
from unik.reproducible import normalised_elf, source_date_epoch

from . import cpio
from .imports import find_modules
from .initbin import init_binary

APP = "app"
PREFIX = "usr"
COMPRESSIONS = ("zstd", "gzip", "xz", "none")
#: zstd's level: -19 packs nearly as tightly as xz and unpacks faster than gzip (what
#: a boot under TCG pays for); the result is cached by the archive's hash.
ZSTD_LEVEL = 19
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Imported by the interpreter or the runtime in ways an import finder cannot see.
ALWAYS = ("encodings", "encodings.aliases", "encodings.utf_8", "encodings.latin_1", "encodings.ascii")

#: The image's bytecode carries line numbers but no column ranges (``-X no_debug_ranges``):
#: a fifth smaller, so less to unpack and unmarshal at boot; tracebacks lose only the ``^^^``.
COMPILE_FLAGS = ("-X", "no_debug_ranges")
_COMPILE = r"""
import json, py_compile, sys
for src, cfile, dfile in json.load(sys.stdin):
    py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


@dataclass(frozen=True)
class Interpreter:
    """The CPython put into images: the one running unik (C extensions must match it)."""

    executable: Path
    version: str
    stdlib: Path
    dynload: Path

    @classmethod
    def current(cls) -> Interpreter:
        """The base interpreter of this process."""
        exe = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
        stdlib = Path(sysconfig.get_path("stdlib")).resolve()
        dynload = Path(str(sysconfig.get_config_var("DESTSHARED") or stdlib / "lib-dynload")).resolve()
        return cls(exe, f"{sys.version_info.major}.{sys.version_info.minor}", stdlib, dynload)

    @property
    def image_stdlib(self) -> str:
        """Where the standard library goes in the image."""
        return f"{PREFIX}/lib/python{self.version}"


@dataclass
class ImageSpec:
    """What goes into an initramfs besides the interpreter."""

    app_files: Sequence[BundleFile]
    #: Standard-library modules to add to what the import finder finds (dynamic imports).
    python_modules: Sequence[str] = ()
    #: Kernel module files, dependencies first.
    kernel_modules: Sequence[Path] = ()
    #: ``(type, directory)`` pseudo filesystems to mount (``("devtmpfs", "/dev")``).
    mounts: Sequence[tuple[str, str]] = ()
    #: How many network interfaces to bring up without an address (all but lo: the image
    #: names no MAC, each instance has its own).
    links: int = 0
    #: More files: absolute path inside the image -> path on the host.
    extra_files: Mapping[str, str] = field(default_factory=dict)
    compression: str = "gzip"


@dataclass
class ImageReport:
    """What was written."""

    path: Path
    bytes: int
    uncompressed_bytes: int
    entries: int
    stdlib_modules: list[str]
    libraries: list[str]
    kernel_modules: list[str]
    digest: str

    def to_json(self) -> dict[str, object]:
        """JSON form, for the manifest."""
        return {
            "file": self.path.name, "bytes": self.bytes, "uncompressed_bytes": self.uncompressed_bytes,
            "entries": self.entries, "stdlib_modules": self.stdlib_modules, "libraries": self.libraries,
            "kernel_modules": self.kernel_modules, "sha256": self.digest,
        }


def init_conf(spec: ImageSpec, interp: Interpreter, modules: Sequence[str]) -> str:
    """The text of ``/unik/init.conf``."""
    lines = ["# unik-init configuration, written by unik-lib-vmimage"]
    lines += [f"mount {kind} {where}" for kind, where in spec.mounts]
    lines += [f"module /{m}" for m in modules]
    lines += [f"links {spec.links}"] if spec.links else []
    lines += [
        f"env PYTHONHOME=/{PREFIX}", "env PYTHONUTF8=1", "env PYTHONDONTWRITEBYTECODE=1",
        "env HOME=/", "env TERM=linux", f"chdir /{APP}",
        f"exec /{PREFIX}/bin/python3 -S /{APP}/main.py",
    ]
    return "\n".join(lines) + "\n"


@cache
def startup_modules(executable: Path) -> tuple[str, ...]:
    """Modules the interpreter loads from files before running ``main.py`` (``-S``)."""
    code = "import sys; print('\\n'.join(n for n, m in sys.modules.items() if getattr(m, '__file__', None)))"
    env = {"PYTHONUTF8": "1", "PATH": os.environ.get("PATH", "")}
    out = subprocess.run([str(executable), "-S", "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=60).stdout
    return tuple(sorted(out.split()))


def find_stdlib(main: Path, search: Sequence[Path], extra: Iterable[str], interp: Interpreter) -> dict[str, Path]:
    """Standard-library modules reachable from ``main`` (and ``extra``): name -> file."""
    extra = list(extra)
    found = find_modules(main, search, [*ALWAYS, *startup_modules(interp.executable), *extra],
                         lazy_roots=[interp.stdlib])
    data = sysconfig._get_sysconfigdata_name()  # type: ignore[attr-defined]
    if "sysconfig" in found.modules and data not in found.modules:
        # sysconfig imports its data module by a name it computes (zoneinfo, reached by pydantic, needs it)
        extra.append(data)
        found = find_modules(main, search, [*ALWAYS, *startup_modules(interp.executable), *extra],
                             lazy_roots=[interp.stdlib])
    missing = sorted(set(extra) & set(found.missing))
    if missing:
        raise BuildError(f"modules needed in the image cannot be found: {', '.join(missing)}")
    out: dict[str, Path] = {}
    roots = (interp.stdlib, interp.dynload)
    for name, file in found.modules.items():
        path = file.resolve()
        if any(path.is_relative_to(r) for r in roots) and "site-packages" not in path.parts:
            out[name] = path
    return dict(sorted(out.items()))


_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


#: Where the dynamic loader looks without RUNPATH or ld.so.cache (Debian's x86_64 glibc: ``ld.so --help``).
SYSTEM_LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib", "/usr/lib")


def image_library_path(lib: Path) -> str:
    """Where the host's shared library ``lib`` goes in the image (no leading slash).

    A library in a directory the loader searches by itself keeps its path; any other (an
    interpreter's own ``libpython``, found through its RUNPATH on the host) goes to
    ``/usr/lib``, where the loader finds it once the RUNPATH's directory is not there: the
    image does not depend on where the host's interpreter is installed.
    """
    text = lib.as_posix()
    if str(lib.parent) in SYSTEM_LIBRARY_DIRS:
        return text.lstrip("/")
    return f"usr/lib/{lib.name}"


def shared_libraries(binaries: Iterable[Path]) -> list[Path]:
    """Every shared library ``binaries`` load (``ldd``), as host paths, sorted."""
    libs: set[Path] = set()
    for binary in sorted(set(binaries)):
        proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            if "not a dynamic executable" in proc.stdout + proc.stderr:
                continue
            raise BuildError(f"ldd {binary} failed: {proc.stderr.strip()}")
        for line in proc.stdout.splitlines():
            if "not found" in line:
                raise BuildError(f"{binary} needs a library that is not installed: {line.strip()}")
            m = _LDD_LINE.match(line)
            if m:
                libs.add(Path(m.group(1)))
    return sorted(libs)


def _cached(kind: str, key: str, make: Callable[[Path], None]) -> bytes:
    path = cache_dir() / kind / key[:2] / key
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{key}.{os.getpid()}.tmp")
        make(tmp)
        tmp.replace(path)
    return path.read_bytes()


def stripped(path: Path) -> bytes:
    """The bytes of an ELF file without debugging data, with a build ID of its content.

    :func:`unik.reproducible.normalised_elf`, cached by content.
    """
    return normalised_elf(path)


def compile_sources(interp: Interpreter, jobs: Sequence[tuple[Path, str]]) -> list[bytes]:
    """Unchecked-hash .pyc bytes for ``(source, path shown in tracebacks)`` pairs (cached)."""
    keys = []
    for src, shown in jobs:
        h = hashlib.sha256(f"{interp.executable}\0{sys.hexversion}\0{shown}\0{COMPILE_FLAGS}\0".encode())
        h.update(src.read_bytes())
        keys.append(h.hexdigest())
    cache = cache_dir() / "pyc"
    todo = [(src, shown, key) for (src, shown), key in zip(jobs, keys, strict=True)
            if not (cache / key[:2] / key).is_file()]
    if todo:
        with tempfile.TemporaryDirectory(prefix="unik-pyc-") as tmp:
            batch = [[str(src), f"{tmp}/{key}", shown] for src, shown, key in todo]
            env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "")}
            proc = subprocess.run([str(interp.executable), "-E", "-s", *COMPILE_FLAGS, "-c", _COMPILE],
                                  input=json.dumps(batch),
                                  capture_output=True, text=True, env=env, timeout=600)
            if proc.returncode != 0:
                raise BuildError(f"precompiling the image's Python modules failed:\n{proc.stderr}")
            for _, _, key in todo:
                dest = cache / key[:2] / key
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(f"{tmp}/{key}", dest)
    return [(cache / key[:2] / key).read_bytes() for key in keys]


def zstd_tool() -> str | None:
    """The ``zstd`` command (Debian package zstd), or ``None``."""
    return shutil.which("zstd")


def _zstd(data: bytes) -> bytes:
    tool = zstd_tool()
    if tool is None:
        raise BuildError("initramfs compression zstd needs the zstd command (apt-get install zstd); "
                         "or choose --initramfs-compression gzip")
    version = subprocess.run([tool, "-V"], capture_output=True, text=True, timeout=30).stdout.strip()
    key = hashlib.sha256(f"zstd-{ZSTD_LEVEL}\0{version}\0".encode() + data).hexdigest()

    def make(tmp: Path) -> None:
        # one thread, no size/name headers that vary: the same archive gives the same bytes
        with tmp.open("wb") as out:
            proc = subprocess.run([tool, f"-{ZSTD_LEVEL}", "-q", "-c", "--single-thread", "--no-progress"],
                                  input=data, stdout=out, stderr=subprocess.PIPE, timeout=900)
        if proc.returncode != 0:
            raise BuildError(f"zstd failed: {proc.stderr.decode(errors='replace').strip()}")

    return _cached("zstd", key, make)


def _compress(data: bytes, how: str) -> bytes:
    if how == "zstd":
        return _zstd(data)
    if how == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=source_date_epoch())
    if how == "xz":  # the kernel's xz decoder wants CRC32 checks
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                             filters=[{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 6}])
    if how == "none":
        return data
    raise BuildError(f"unknown initramfs compression {how!r} (one of {', '.join(COMPRESSIONS)})")


def build_initramfs(spec: ImageSpec, out: Path, progress: Progress, interp: Interpreter | None = None) -> ImageReport:
    """Write the initramfs for ``spec`` to ``out``."""
    interp = interp or Interpreter.current()
    if (sys.version_info.major, sys.version_info.minor) != tuple(map(int, interp.version.split("."))):
        raise BuildError(f"the image's Python {interp.version} must be the one running unik")
    files: dict[str, tuple[bytes, int]] = {}

    def add(dest: str, data: bytes, perm: int = 0o644) -> None:
        files[dest.strip("/")] = (data, perm)

    add("init", init_binary().read_bytes(), 0o755)
    module_names = []
    for ko in spec.kernel_modules:
        name = f"lib/modules/{ko.name}"
        module_names.append(name)
        add(name, ko.read_bytes())
    add("unik/init.conf", init_conf(spec, interp, module_names).encode())

    with tempfile.TemporaryDirectory(prefix="unik-image-") as tmp:
        stage = Path(tmp) / APP
        sources: list[tuple[Path, str]] = []
        binaries = [interp.executable]
        for f in spec.app_files:
            target = stage / f.dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.source, target)
            executable = f.source.suffix == ".so"
            add(f"{APP}/{f.dest}", stripped(f.source) if executable else f.source.read_bytes(),
                0o755 if executable else 0o644)
            if executable:
                binaries.append(f.source)
            if f.dest.endswith(".py"):
                sources.append((f.source, f"/{APP}/{f.dest}"))
        with progress.step("finding the standard-library modules the application reaches"):
            stdlib = find_stdlib(stage / "main.py", [stage, interp.stdlib, interp.dynload],
                                 spec.python_modules, interp)
    app_pyc = compile_sources(interp, sources)
    for (_, shown), pyc in zip(sources, app_pyc, strict=True):
        parent, stem = shown.rsplit("/", 1)
        cache_tag = sys.implementation.cache_tag
        add(f"{parent}/__pycache__/{stem[:-3]}.{cache_tag}.pyc", pyc)

    std_sources: list[tuple[Path, str]] = []
    std_dests: list[str] = []
    for path in stdlib.values():
        if path.is_relative_to(interp.dynload):
            dest = f"{interp.image_stdlib}/lib-dynload/{path.relative_to(interp.dynload).as_posix()}"
            add(dest, stripped(path), 0o755)
            binaries.append(path)
        elif path.suffix == ".py":
            rel = path.relative_to(interp.stdlib).as_posix()
            std_sources.append((path, f"/{interp.image_stdlib}/{rel}"))
            std_dests.append(f"{interp.image_stdlib}/{rel}c")  # sourceless: module.pyc
    with progress.step(f"precompiling {len(std_sources)} standard-library modules"):
        for dest, pyc in zip(std_dests, compile_sources(interp, std_sources), strict=True):
            add(dest, pyc)
    add(f"{PREFIX}/bin/python3", stripped(interp.executable), 0o755)
    libraries = shared_libraries(binaries)
    image_libraries = []
    for lib in libraries:
        dest = image_library_path(lib)
        image_libraries.append(dest)
        add(dest, stripped(lib.resolve()), 0o755)
    for dest, source in spec.extra_files.items():
        add(dest, Path(source).read_bytes())

    entries = _with_directories(files, [f"{interp.image_stdlib}/lib-dynload"])
    raw = io.BytesIO()
    writer = cpio.Writer(raw, mtime=source_date_epoch())
    for entry in entries:
        writer.add(entry)
    writer.close()
    data = raw.getvalue()
    with progress.step(f"compressing the initramfs ({spec.compression}, {len(data) / 1e6:.1f} MB)"):
        packed = _compress(data, spec.compression)
    out.write_bytes(packed)
    return ImageReport(
        path=out, bytes=len(packed), uncompressed_bytes=len(data), entries=len(entries),
        stdlib_modules=sorted(stdlib), libraries=sorted(f"/{d}" for d in image_libraries),
        kernel_modules=[Path(m).stem for m in module_names],
        digest=hashlib.sha256(packed).hexdigest(),
    )


def _with_directories(files: Mapping[str, tuple[bytes, int]], extra: Iterable[str]) -> list[cpio.Entry]:
    dirs = {"dev", "proc", "sys", "tmp", "sbin"}
    for name in [*files, *(f"{d}/-" for d in extra)]:
        parts = name.split("/")[:-1]
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    entries = [cpio.Entry.directory(d, 0o1777 if d == "tmp" else 0o755) for d in dirs]
    entries += [
        cpio.Entry.chardev("dev/console", 5, 1), cpio.Entry.chardev("dev/null", 1, 3, 0o666),
        cpio.Entry.chardev("dev/urandom", 1, 9, 0o666),
        cpio.Entry.chardev("dev/hwrng", 10, 183, 0o600),  # the boot seed (init.c), before any mount
        # COM2: the host's channel to a VM booted for a snapshot (unik_vmguest.snapshot).
        cpio.Entry.chardev("dev/ttyS1", 4, 65, 0o600),
        # Xen's shutdown request runs /sbin/poweroff in the guest: the init, which then
        # asks PID 1 to stop the application.
        cpio.Entry.symlink("sbin/poweroff", "/init"),
    ]
    entries += [cpio.Entry.file(name, data, perm) for name, (data, perm) in files.items()]
    return sorted(entries, key=lambda e: e.name)


def read_initramfs(path: Path) -> list[cpio.Entry]:
    """The entries of a (compressed) initramfs written by :func:`build_initramfs`."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:6] == b"\xfd7zXZ\x00":
        data = lzma.decompress(data)
    elif data[:4] == ZSTD_MAGIC:
        tool = zstd_tool()
        if tool is None:
            raise BuildError(f"{path} is zstd-compressed: reading it needs the zstd command")
        data = subprocess.run([tool, "-dc"], input=data, capture_output=True, check=True, timeout=300).stdout
    return cpio.read_entries(data)
