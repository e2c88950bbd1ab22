"""The hvt target: CPython and the application as one static ELF, run by unik's own KVM monitor.

``unik build`` links ``dist/<name>-hvt/<name>.hvt``: hvt's guest runtime
(``hvt/runtime.c``, ``hvt/boot.S``), a ``main`` that starts CPython
(``hvt/pymain.c``), Debian's static ``libpython3.11.a`` and glibc, and the archive of
the in-memory filesystem (:mod:`unik_solo5.hvtfs`): the standard library at
``/lib/python3.11`` (with its byte code) and the artifact's runtime files (the generated
``main.py``, the application, unik and its plugins) at ``/app``.  ``manifest.json``
beside it is solo5's device manifest; the same devices are a note in the ELF, which
``unik-hvt`` enforces (it refuses any other device).  Where ``/dev/kvm`` works the build
also pre-initialises the unikernel (:mod:`unik_solo5.hvt_snapshot`): ``<name>.snap``, the
guest saved after its imports, which ``unik run -t hvt`` starts from.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unik.errors import BuildError, ConfigError, RunError
from unik.instances import process_start
from unik.keys import Key, KeyValues
from unik.plan import Plan
from unik.progress import counted
from unik.target import Artifact, BuildContext, Check, RunContext, Target, check_disk_image, given_bindings

from .providers import BLOCK, NET, NET_MAC
from .target import _wait, connect_taps, host_files

if TYPE_CHECKING:
    from unik.bundle import BundleFile

    from .hvtfs import FsFile

# What only a build needs (the byte compiler, the filesystem archive, the standard
# library's C modules, the bundle's file list) is imported by emit and its helpers:
# `unik run -t hvt` of a built unikernel starts the monitor sooner without them (issue 22).

MONITOR = Path(__file__).with_name("unik-hvt")
PYMAIN = Path(__file__).with_name("hvt") / "pymain.c"
#: Debian's CPython that the unikernel links (python3.11-dev / libpython3.11-dev).
PY_VERSION = "3.11"
STDLIB = Path(f"/usr/lib/python{PY_VERSION}")
LIBPYTHON_DIR = Path(f"/usr/lib/python{PY_VERSION}/config-{PY_VERSION}-x86_64-linux-gnu")
PY_INCLUDE = Path(f"/usr/include/python{PY_VERSION}")
LIBS = ["-lpython3.11", "-lexpat", "-lz", "-lm", "-ldl", "-lpthread", "-lutil"]
#: Parts of the standard library a unikernel has no use for (tests, GUIs, installers, shared modules).
STDLIB_SKIP = ("test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "distutils",
               "pydoc_data", "site-packages", "dist-packages", "lib-dynload", f"config-{PY_VERSION}-x86_64-linux-gnu",
               "__phello__", "venv")


def check_mem(value: Any, keys: KeyValues) -> None:
    """``--mem`` as 256M or 1G (a plain number is MiB), between 64 MiB and 3 GiB."""
    mib(str(value))


def mib(text: str) -> int:
    """MiB of a size written 256M, 1G or 256 (MiB)."""
    m = re.fullmatch(r"(\d+)([mMgG]?)", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a memory size: give one as 256M or 1G")
    value = int(m.group(1)) * (1024 if m.group(2) in ("g", "G") else 1)
    if not 64 <= value <= 3072:
        raise ValueError(f"{text!r}: hvt guests have between 64M and 3G of memory")
    return value


MEM = Key("mem", "memory of the unikernel (256M, 1G; at most 3G)", default="256M", metavar="SIZE", check=check_mem)
TRACE = Key("trace", "log every system call the application makes (unik-hvt --trace)", "bool")
PROFILE = Key("profile", "at exit, say where the run's time went (unik-hvt --profile)", "bool")
PROFILE_IMPORTS = Key("profile_imports", "boot cold and print CPython's import times, as -X importtime does "
                      "(unik-hvt --profile-imports)", "bool")
NO_SNAPSHOT = Key("no_snapshot", "boot cold even when the unikernel has a snapshot (made by unik build)", type="bool",
                  default="false")


def build_missing() -> str | None:
    """What linking an hvt unikernel lacks on this host (``None``: nothing)."""
    if shutil.which("gcc") is None:
        return "gcc is missing: apt-get install gcc libc6-dev"
    if not (LIBPYTHON_DIR / "libpython3.11.a").exists() or not (PY_INCLUDE / "Python.h").exists():
        return (f"Debian's static CPython is missing ({LIBPYTHON_DIR}/libpython3.11.a): "
                "apt-get install libpython3.11-dev")
    if not Path("/usr/lib/x86_64-linux-gnu/libc.a").exists():
        return "the static glibc is missing (/usr/lib/x86_64-linux-gnu/libc.a): apt-get install libc6-dev"
    for lib in ("libexpat.a", "libz.a"):
        if not Path("/usr/lib/x86_64-linux-gnu", lib).exists():
            pkg = "libexpat1-dev" if "expat" in lib else "zlib1g-dev"
            return f"{lib} is missing: apt-get install {pkg}"
    if not STDLIB.is_dir():
        return f"the standard library {STDLIB} is missing: apt-get install libpython3.11-stdlib"
    return None


def _pyc(source: Path, guest: str) -> bytes | None:
    """``source`` compiled for the guest's CPython (same minor version only), checked by hash, not mtime."""
    if sys.version_info[:2] != (3, 11):
        return None
    import py_compile
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "x.pyc")
        try:
            py_compile.compile(str(source), cfile=str(out), dfile=guest, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        except py_compile.PyCompileError:
            return None  # the guest reports the syntax error when it imports the module
        return out.read_bytes()


EXT_SUFFIX = re.compile(r"\.cpython-\d+[^/]*\.so$|\.abi3\.so$|\.so$")


def extension_sources(files: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """(dotted name, C source) of each extension module among ``files`` whose source lies beside it."""
    out = []
    for dest, source in files:
        if EXT_SUFFIX.search(dest):
            module = EXT_SUFFIX.sub("", dest)
            c = source.parent / (Path(module).name + ".c")
            if c.exists():
                out.append((module.replace("/", "."), c))
    return out


def unlinkable(files: Iterable[BundleFile]) -> str | None:
    """Why hvt cannot link ``files``: the application's dependencies' shared objects without C sources.

    hvt builds extension modules into CPython from the C source beside them (unik's
    plugins bring theirs); a wheel's compiled ``.so`` alone (pydantic-core, httptools)
    has no dynamic loader to load it.  ``None`` when there is none.
    """
    from unik.pydeps import deps_root

    files = list(files)
    built_in = {module for module, _ in extension_sources([(f.dest, Path(f.source)) for f in files])}
    pip = deps_root()  # the application's own dependencies, as pip installed them
    shared = sorted({f"{f.distribution} ({f.dest})" for f in files if EXT_SUFFIX.search(f.dest)
                     and f.source.is_relative_to(pip)
                     and EXT_SUFFIX.sub("", f.dest).replace("/", ".") not in built_in})
    if not shared:
        return None
    return (f"hvt links extension modules into CPython from their C sources, and these come without one "
            f"(no dynamic loader can load them): {', '.join(shared)}; build for virtio, xen or spt, "
            f"or drop the dependency")


def compile_builtins(extensions: list[tuple[str, Path]], tmp: Path,
                     stdlib: Sequence[tuple[str, Path]] = ()) -> list[Path]:
    """Objects of ``extensions`` (each ``PyInit_`` renamed) and of the C file that registers them as built-ins.

    ``stdlib`` are top-level modules already compiled (module name, object; an object may
    hold several, and an object named ``""`` is only linked): registered under their own
    ``PyInit_<name>`` (:mod:`unik_solo5.hvt_stdlib`).
    """
    objects: list[Path] = []
    decls, calls = [], []
    for module, obj in stdlib:
        if obj not in objects:  # one object may define several modules, and a module span several
            objects.append(obj)
        if not module:
            continue
        decls.append(f"extern PyObject *PyInit_{module}(void);")
        calls.append(f'    PyImport_AppendInittab("{module}", PyInit_{module});')
    for i, (module, source) in enumerate(extensions):
        obj = tmp / f"ext{i}.o"
        proc = subprocess.run(["gcc", "-O2", f"-I{PY_INCLUDE}", "-c", str(source), "-o", str(obj)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"compiling {source} as a built-in module failed:\n{proc.stderr.strip()}")
        init = f"PyInit_{module.rpartition('.')[2]}"
        subprocess.run(["objcopy", f"--redefine-sym={init}=hvt_builtin_{i}", str(obj)], check=True)
        objects.append(obj)
        decls.append(f"extern PyObject *hvt_builtin_{i}(void);")
        calls.append(f'    PyImport_AppendInittab("{module}", hvt_builtin_{i});')
    reg = tmp / "builtins.c"
    reg.write_text("#include <Python.h>\n" + "\n".join(decls) + "\nvoid hvt_register_builtins(void);\n"
                   "void hvt_register_builtins(void)\n{\n" + "\n".join(calls) + "\n}\n")
    obj = tmp / "builtins.o"
    subprocess.run(["gcc", "-O2", f"-I{PY_INCLUDE}", "-c", str(reg), "-o", str(obj)], check=True)
    return [*objects, obj]


def app_files(files: list[tuple[str, Path]]) -> dict[str, FsFile]:
    """The artifact's files under ``/app`` (not shared objects), each module with its byte code in ``__pycache__``."""
    from .hvtfs import FsFile

    tag = sys.implementation.cache_tag
    out: dict[str, FsFile] = {}
    for dest, source in files:
        if EXT_SUFFIX.search(dest):
            continue
        guest = f"/app/{dest}"
        st = source.stat()
        out[guest] = FsFile(source.read_bytes(), st.st_mtime_ns)
        if dest.endswith(".py"):
            code = _pyc(source, guest)
            if code is not None:
                parent, _, name = guest.rpartition("/")
                out[f"{parent}/__pycache__/{name[:-3]}.{tag}.pyc"] = FsFile(code, st.st_mtime_ns)
    return out


class HvtTarget(Target):
    """CPython and the application as a unikernel on unik's own minimal KVM monitor (no Linux inside)."""

    PLUGIN_NAME = "hvt"
    reports_started = True
    host_network = False  # no Linux inside: no sockets at all
    description = "a unikernel: CPython on unik's own KVM monitor, no Linux inside (solo5's hvt model)"
    keys = (NET, BLOCK, NET_MAC, MEM)  # --mem at configure: the snapshot's (unik build), unik run's default
    run_keys = (MEM, TRACE, PROFILE, PROFILE_IMPORTS, NET, BLOCK, NET_MAC, NO_SNAPSHOT)
    startup = (("unik_solo5.hvt_gc", "the garbage collector, off while it starts, back on when the devices connect"),)

    def doctor(self) -> list[Check]:
        """What building and running hvt unikernels needs here: KVM that runs the probe guest, gcc, static CPython."""
        from .hvt_doctor import doctor_checks

        return doctor_checks()

    def check_plan(self, plan: Plan) -> None:
        """Refuse, before configuring, dependencies pip has installed already as shared objects hvt cannot link.

        The same check as :meth:`emit`'s (:func:`unlinkable`), on the installation that
        ``unik build`` would use; when pip has not made it yet, the build checks it.
        """
        from unik.pydeps import installed, third_party

        wanted = third_party(plan.app.dependencies)
        site = installed(wanted) if wanted else None
        if site is None:
            return
        from unik.bundle import site_files

        why = unlinkable(site_files(site))
        if why:
            raise ConfigError(str(Path(plan.app.root, "pyproject.toml")), "project", "dependencies", why)

    def emit(self, plan: Plan, ctx: BuildContext) -> Artifact:
        """Link ``dist/<name>-hvt/<name>.hvt`` and write ``manifest.json`` beside it."""
        import tempfile

        from unik.bundle import runtime_files

        from . import hvt_stdlib
        from .hvtfs import BLOCK as BLOCK_DEVICE
        from .hvtfs import NET as NET_DEVICE
        from .hvtfs import FsError, link, pack, tree

        files = runtime_files(plan, ctx.build_dir)
        pairs = [(f.dest, Path(f.source)) for f in files]
        why = unlinkable(files)  # configure refused it already when pip had installed them (check_plan)
        if why:
            raise BuildError(why)
        why = build_missing()
        if why:
            raise BuildError(f"cannot build for hvt: {why}")
        try:
            stdlib = hvt_stdlib.objects(ctx.progress)
        except BuildError as exc:
            if any(n.provider.startswith("tls.") for n in plan.nodes):
                raise BuildError(f"the plan's TLS device needs the ssl module, built into the unikernel: {exc}") \
                    from None
            ctx.progress.warn(f"linking without {', '.join(hvt_stdlib.MODULES)} (import ssl will fail in the "
                              f"guest; hashlib keeps CPython's own hashes, the others their pure-Python "
                              f"code): {exc}")
            stdlib = []
        image = tree(STDLIB, f"/lib/python{PY_VERSION}", skip=STDLIB_SKIP)
        image.update(app_files(pairs))
        extensions = extension_sources(pairs)
        archive = pack(image)
        ctx.progress.info(f"linking CPython with {counted(len(files), 'file')}, "
                          f"{counted(len(extensions), 'built-in extension module')} and the standard library "
                          f"({len(archive) >> 20} MiB of files)")
        devices: list[dict[str, Any]] = []
        for n in plan.nodes:
            if n.provider == "hvt.tap":
                devices.append({"name": n.name, "type": "NET_BASIC"})
            elif n.provider == "hvt.block":
                devices.append({"name": n.name, "type": "BLOCK_BASIC", **({"file": str(n.options["file"])}
                                                                        if n.options.get("file") else {})})
        out = ctx.artifact_dir(plan)
        elf = out / f"{plan.app.name}.hvt"
        with tempfile.TemporaryDirectory(prefix="unik-hvt-") as tmp:
            obj = Path(tmp, "pymain.o")
            proc = subprocess.run(["gcc", "-O2", f"-I{PY_INCLUDE}", "-c", str(PYMAIN), "-o", str(obj)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(f"compiling {PYMAIN.name} failed:\n{proc.stderr.strip()}")
            builtins = compile_builtins(extensions, Path(tmp), stdlib)
            try:
                # _ssl, _hashlib and unik-lib-entropy's _aesctr; unused members are not linked
                link([obj, *builtins], archive, elf, libs=[f"-L{LIBPYTHON_DIR}", *LIBS, *hvt_stdlib.LIBS],
                     devices=[(d["name"], NET_DEVICE if d["type"] == "NET_BASIC" else BLOCK_DEVICE)
                              for d in devices])
            except (RuntimeError, FileNotFoundError, FsError) as exc:
                raise BuildError(str(exc)) from exc
        manifest = {"type": "solo5.manifest", "version": 1, "devices": devices}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        self._preinitialise(elf, ctx, mib(str(plan.keys.raw(MEM.name) if MEM.name in plan.keys.keys
                                             and plan.keys.raw(MEM.name) else MEM.default)))
        return Artifact("hvt", out, elf.name, {"solo5": manifest, "files": len(image),
                                               "size": elf.stat().st_size})

    @staticmethod
    def _preinitialise(elf: Path, ctx: BuildContext, mem: int) -> None:
        """Save it with ``mem`` MiB at its snapshot point beside it, where KVM can (:mod:`.hvt_snapshot`)."""
        from . import hvt_snapshot

        why = hvt_snapshot.kvm_missing()
        if why:
            for stale in (hvt_snapshot.snapshot_file(elf), hvt_snapshot.record_file(elf)):
                stale.unlink(missing_ok=True)
            ctx.progress.info(f"not pre-initialised ({why}): unik run -t hvt boots it cold")
            return
        try:
            record = hvt_snapshot.save(MONITOR, elf, mem)
        except hvt_snapshot.NotPreinitialised as exc:
            ctx.progress.warn(f"not pre-initialised, this host's KVM failed the boot ({exc}): unik run -t hvt boots "
                              f"it cold (unik doctor -t hvt checks this KVM)")
            return
        ctx.progress.info(f"pre-initialised {elf.name} in {record['seconds']:.1f} s: "
                          f"{hvt_snapshot.snapshot_file(elf).name} ({int(str(record['bytes'])) / 1e6:.1f} MB, "
                          f"--mem {mem}M), which unik run -t hvt starts from")

    def run(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> int:
        """Run the unikernel under ``unik-hvt`` and return its exit status."""
        if not MONITOR.exists():
            raise RunError(f"the monitor {MONITOR} is missing: reinstall unik-target-solo5 (with gcc installed)")
        opts = ctx.options
        # --mem given to unik run, else configured (the snapshot was made with it), else 256M
        mem_text = opts.raw(MEM.name) if opts.is_set(MEM.name) else (keys.raw(MEM.name) if MEM.name in keys.keys
                                                                       else None)
        mem = mib(str(mem_text or MEM.default))
        cmd = [str(MONITOR), "--mem", str(mem)]
        for flag in ("trace", "profile", "profile_imports"):
            if flag in opts.keys and opts.get(flag):
                cmd.append(f"--{flag.replace('_', '-')}")
        if not any(flag in opts.keys and opts.get(flag) for flag in ("no_snapshot", "profile_imports")):
            cmd += ["--snapshot", str(artifact.path.with_suffix(".snap"))]  # the monitor checks it, else boots cold
        nets = given_bindings("net", keys, ctx)
        blocks = given_bindings("block", keys, ctx)
        macs = given_bindings("net_mac", keys, ctx)
        manifest = json.loads((artifact.directory / "manifest.json").read_text())
        declared = {d["name"]: d for d in manifest["devices"]}
        for name, d in declared.items():
            if d["type"] == "BLOCK_BASIC" and name not in blocks and d.get("file"):
                blocks[name] = d["file"]
            given = nets if d["type"] == "NET_BASIC" else blocks
            if name not in given:
                opt = "--net" if d["type"] == "NET_BASIC" else "--block"
                raise RunError(f"the manifest declares {d['type']} device {name!r}: give it with {opt} {name}="
                               f"{'TAP' if opt == '--net' else 'FILE'}")
        for name in [*nets, *blocks]:
            if name not in declared:
                has = ", ".join(declared) or "none"
                raise RunError(f"{name!r} is not a device of this application (it has: {has})")
        for name, path in blocks.items():
            check_disk_image(name, path, writable=True)
        files = host_files(keys)
        if files:
            raise RunError(f"the unikernel cannot read host files ({', '.join(files)}: given by a key such as "
                           f"--tls-cert): it sees only the files baked into its ELF; name them in the "
                           f"application's pyproject.toml ([tool.unik.devices.tls] cert and key) and rebuild")
        with contextlib.ExitStack() as made:
            keys = connect_taps(made, nets, keys, ctx)
            cmd += [f"--net:{n}={nets[n]}" for n in declared if n in nets]
            cmd += [f"--block:{n}={os.path.abspath(blocks[n])}" for n in declared if n in blocks]
            cmd += [f"--net-mac:{n}={m}" for n, m in macs.items() if n in nets]
            guest = KeyValues([k for k in keys.keys.values() if k.name != MEM.name],
                              {n: v for n, v in keys.values.items() if n != MEM.name})  # the monitor's, not the guest's
            cmd += ["--", str(artifact.path), *guest.as_args(), *ctx.extra_args]
            if ctx.dry_run:
                return ctx.show_command(cmd)
            proc = subprocess.Popen(cmd)
            ctx.started(child_pid=proc.pid, child_pid_start=process_start(proc.pid))
            status = _wait(proc)  # SIGINT and SIGTERM are forwarded: the monitor stops the VM at once
            return status if status >= 0 else 128 - status

