"""The spt target: emit the application and its solo5 manifest, run it under the tender.

``dist/<name>-spt/app/`` holds the runtime files (the generated ``main.py``, the
application, unik and its plugins), ``__spt__.py`` (which calls
:func:`unik_solo5.boot.boot`) and ``manifest.json``, solo5's manifest of the devices
the tender must open: ``{"type": "solo5.manifest", "version": 1, "devices": [...]}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from unik.errors import RunError
from unik.instances import process_start
from unik.inventory import Content, classify_bundle
from unik.keys import KeyValues
from unik.plan import Plan
from unik.progress import counted
from unik.target import Artifact, BuildContext, Check, RunContext, Target, check_disk_images, given_bindings

from .abi import OUT_OF_MEMORY, SOLO5_TYPES
from .providers import BLOCK, MEM, NET, NET_MAC, SHOW_POLICY, Block, mem_mib

# The build's modules (the bundle, ELF normalising, the root file) and the run's
# machinery (TAPs, memory cgroups, the system call names) are imported where they are
# used: `unik run -t hvt` loads this module for the spt target's registration (issue 18).

TENDER = Path(__file__).with_name("unik-spt")
ENTRY = "app/__spt__.py"
BOOTSTRAP = '''\
"""Start {name} under unik's spt sandbox (run by the unik-spt tender)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unik_solo5.boot import boot  # noqa: E402

boot(__file__)
'''


def solo5_manifest(plan: Plan) -> dict[str, object]:
    """solo5's manifest of the devices the tender opens, from the plan."""
    devices = [
        {"name": n.name, "type": SOLO5_TYPES[n.kind]}
        for n in plan.nodes if n.kind in SOLO5_TYPES and n.provider.startswith("spt.")
    ]
    return {"type": "solo5.manifest", "version": 1, "devices": devices}


def split_args(extra: Sequence[str]) -> tuple[dict[str, dict[str, str]], bool, list[str]]:
    """solo5's ``--net:NAME=TAP``, ``--net-mac:NAME=MAC``, ``--block:NAME=FILE`` and ``--show-policy``.

    Returns ``({"net": {...}, "net_mac": {...}, "block": {...}}, show_policy, the rest)``.
    """
    given: dict[str, dict[str, str]] = {"net": {}, "net_mac": {}, "block": {}}
    show = False
    rest: list[str] = []
    for arg in extra:
        kind, _, binding = arg.partition(":")
        name, eq, value = binding.partition("=")
        key = kind[2:].replace("-", "_")
        if kind.startswith("--") and key in given and name and eq and value:
            given[key][name] = value
        elif arg == "--show-policy":
            show = True
        else:
            rest.append(arg)
    return given, show, rest



def connect_taps(made: contextlib.ExitStack, nets: dict[str, str], keys: KeyValues, ctx: RunContext) -> KeyValues:
    """Check each ``--net DEVICE=TAP`` names a TAP; make one for each ``DEVICE=auto`` (removed with ``made``).

    ``nets`` is updated in place with the TAPs made; the keys returned name them too
    (the application's ``--net`` key, where the plan has one).  A dry run makes none.
    """
    if not nets:
        return keys
    from unik.hostnet import AUTO, AutoTap, auto_address, require_tap

    for name, ifname in list(nets.items()):
        if ifname == AUTO and ctx.dry_run:  # the command as it would run, without making a TAP
            continue
        if ifname == AUTO:
            tap = made.enter_context(AutoTap(name, auto_address(name, keys)))
            ctx.progress.info(f"network device {name}: {tap.summary}")
            nets[name] = tap.ifname
            if "net" in keys.keys:
                keys = keys.with_args({"net": [f"{name}={tap.ifname}"]})
        else:
            require_tap(name, ifname)
    return keys

class SptTarget(Target):
    """The application as a seccomp-sandboxed process that sees only its declared devices."""

    PLUGIN_NAME = "spt"
    reports_started = True
    host_network = False  # sealed: the first stage of its filter refuses sockets
    description = "a seccomp-sandboxed process seeing only its declared devices (solo5's spt model)"
    keys = (NET, BLOCK, NET_MAC)
    run_keys = (NET, BLOCK, NET_MAC, MEM, SHOW_POLICY)

    def doctor(self) -> Sequence[Check]:
        """What the sandbox needs here: x86_64, seccomp, namespaces (root), the tender."""
        from .doctor import doctor_checks

        return doctor_checks()

    def emit(self, plan: Plan, ctx: BuildContext) -> Artifact:
        """Write ``dist/<name>-spt/app/`` with the manifest and the bootstrap."""
        from unik.bundle import runtime_files
        from unik.reproducible import normalised_elf

        from .root import write_root_file

        files = runtime_files(plan, ctx.build_dir)
        ctx.progress.info(f"packaging {counted(len(files), 'file')}")
        out = ctx.artifact_dir(plan)
        app = out / "app"
        for f in files:
            dest = app / f.dest
            dest.parent.mkdir(parents=True, exist_ok=True)
            if f.source.suffix == ".so":  # stripped, a build ID of its content: not where it was compiled
                dest.write_bytes(normalised_elf(f.source))
                shutil.copystat(f.source, dest)
            else:
                shutil.copy2(f.source, dest)
        manifest = solo5_manifest(plan)
        (app / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (app / "__spt__.py").write_text(BOOTSTRAP.format(name=plan.app.name))
        # The host files its imports load (shared libraries, OpenSSL's configuration): its
        # root holds those and nothing else of the host's (unik_solo5.root).
        write_root_file(app, tls=any(n.kind == "tls" for n in plan.nodes))
        block_files = {n.name: n.options["file"] for n in plan.nodes
                       if n.provider == "spt.block" and n.options.get("file")}
        return Artifact("spt", out, ENTRY, {"solo5": manifest, "files": len(files), "block_files": block_files})

    def preflight(self, plan: Plan, keys: KeyValues, ctx: RunContext) -> None:
        """Every block file is given (``--block`` or solo5's ``--block:NAME=FILE``), exists and can be opened.

        TAPs are checked by :meth:`run`, after the device names (building takes a moment only).
        """
        files = {**given_bindings("block", keys, ctx), **split_args(ctx.extra_args)[0]["block"]}
        check_disk_images(plan, Block.PLUGIN_NAME, files)


    def inspect(self, artifact: Artifact) -> tuple[list[Content], dict[str, str]]:
        """The application directory by kind; the solo5 manifest's devices."""
        from .root import ROOT_FILE

        app = artifact.path.parent
        if not app.is_dir():
            raise RunError(f"{app} is missing: run `unik build`")
        files = [(p.relative_to(app).as_posix(), p.stat().st_size) for p in sorted(app.rglob("*")) if p.is_file()]
        plan_file = app / "plan.json"
        plan = json.loads(plan_file.read_text()) if plan_file.is_file() else None
        generated = {"manifest.json", "__spt__.py", ROOT_FILE}
        contents = [Content(f"app/{d}", n, "generated") for d, n in files if d in generated]
        contents += classify_bundle([(d, n) for d, n in files if d not in generated], plan, prefix="app/")
        declared = [f"{d['name']} ({d['type']})" for d in artifact.manifest.get("solo5", {}).get("devices", [])]
        return contents, {"tender": str(TENDER), "devices handed by the tender": ", ".join(declared) or "none"}

    def run(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> int:
        """Run the artifact under the tender with its devices; report a refused system call by name."""
        given, show, rest = split_args(ctx.extra_args)
        if show or ("show_policy" in ctx.options.keys and ctx.options.get("show_policy")):
            from .policy import describe  # the allowlist machinery, only when shown

            sys.stdout.write(describe())
            return 0
        # Lowest first: the device tables' files, configure's keys, this run's keys, solo5's syntax.
        layers: dict[str, dict[str, str]] = {"net": {}, "net_mac": {},
                                             "block": dict(artifact.manifest.get("block_files", {}))}
        for key, bound in layers.items():
            if key in keys.keys:
                bound.update(keys.bindings(key))
            if key in ctx.options.keys:
                bound.update(ctx.options.bindings(key))
            given[key] = {**bound, **given[key]}
        nets, macs, blocks = given["net"], given["net_mac"], given["block"]
        manifest = json.loads((artifact.path.parent / "manifest.json").read_text())
        declared = {d["name"]: d["type"] for d in manifest["devices"]}
        for name, kind in declared.items():
            opt = "--net" if kind == "NET_BASIC" else "--block"
            if name not in (nets if kind == "NET_BASIC" else blocks):
                raise RunError(f"the manifest declares {kind} device {name!r}: give it with {opt} {name}=...")
        for name in [*nets, *blocks]:
            if name not in declared:
                has = ", ".join(declared) or "none"
                raise RunError(f"{name!r} is not a device of this application (it has: {has})")
        for name in macs:
            if name not in nets:
                raise RunError(f"--net-mac {name}=...: {name!r} is not a network device given with --net")
        for name, path in blocks.items():
            if not os.path.exists(path):
                raise RunError(f"block device {name!r}: {path} does not exist: create it first "
                               f"(e.g. truncate -s 64M {path})")
        given_mem = ctx.options.get("mem") if "mem" in ctx.options.keys else None
        mem_mib(str(given_mem or MEM.default))  # a bad size is refused before a TAP is made
        machine = os.uname().machine  # platform.machine()'s answer, without importing platform (1 ms of `unik run`)
        if machine != "x86_64":
            raise RunError(f"the spt allowlist is written for x86_64 only, not {machine}")
        if not TENDER.exists():
            raise RunError(f"the tender {TENDER} is missing: reinstall unik-target-solo5")
        with contextlib.ExitStack() as made:
            keys = connect_taps(made, nets, keys, ctx)
            return self._start(artifact, keys, ctx, nets, macs, blocks, rest)

    def _start(self, artifact: Artifact, keys: KeyValues, ctx: RunContext, nets: dict[str, str],
               macs: dict[str, str], blocks: dict[str, str], rest: list[str]) -> int:
        """Run the tender with the devices; report a refused system call by name."""
        from . import memory
        from .syscalls import X86_64_NAMES

        given_mem = ctx.options.get("mem") if "mem" in ctx.options.keys else None
        mem = mem_mib(str(given_mem or MEM.default))
        cmd = [str(TENDER), f"--mem={mem}", *[f"--net:{n}={v}" for n, v in nets.items()],
               *[f"--net-mac:{n}={v}" for n, v in macs.items()],
               *[f"--block:{n}={os.path.abspath(v)}" for n, v in blocks.items()],
               "--", sys.executable, "-I", "-S", str(artifact.path), *keys.as_args(), *rest]
        if ctx.dry_run:
            return ctx.show_command(cmd, {"UNIK_PROG": artifact.directory.name})
        # --mem bounds resident memory through a memory cgroup where the host lets us make
        # one (unik_solo5.memory); RLIMIT_AS is set in every case.
        name = artifact.directory.name
        cgroup, how = memory.make(mem, f"{os.getpid()}-{time.monotonic_ns()}")
        if cgroup is None:
            ctx.progress.info(f"--mem {mem} MiB bounds the address space only (RLIMIT_AS): {how}")
            cmd.insert(1, f"--as={memory.address_space_mib(mem, None)}")
        else:
            cmd[1:1] = [f"--cgroup={cgroup.path}", f"--as={memory.address_space_mib(mem, cgroup)}"]
        try:
            status, refused = self._tender(cmd, name, host_files(keys), ctx)
            if refused is not None:
                print(f"unik: {name}: killed by the sandbox: system call {X86_64_NAMES.get(refused, '?')} "
                      f"({refused}) is not in the spt allowlist (unik run -t spt --show-policy)", file=sys.stderr)
            elif cgroup is not None and status in (128 + signal.SIGKILL, -signal.SIGKILL) and cgroup.oom_kills():
                print(f"unik: {name}: out of memory: the application reached its memory limit (--mem {mem} MiB, "
                      f"{how}: the kernel stopped it); give more with unik run --mem SIZE", file=sys.stderr)
                return OUT_OF_MEMORY
        finally:
            if cgroup is not None:
                cgroup.remove()
        return status if status >= 0 else 128 - status

    @staticmethod
    def _tender(cmd: list[str], name: str, files: list[str], ctx: RunContext) -> tuple[int, int | None]:
        """Run the tender; its status and the number of the system call the kernel refused, if any."""
        # The tender alone writes to this pipe (the number of a refused call, as the kernel
        # gave it); the application never holds it. The caller's environment stays here.
        from .root import FILES_ENV

        r, w = os.pipe()
        cmd = [cmd[0], f"--report-fd={w}", *cmd[1:]]
        env = {"UNIK_PROG": name}
        if files:
            env[FILES_ENV] = "\n".join(files)
        try:
            proc = subprocess.Popen(cmd, env=env, pass_fds=(w,))
        finally:
            os.close(w)
        ctx.started(tender_pid=proc.pid, tender_pid_start=process_start(proc.pid))
        with os.fdopen(r, "rb") as report:
            status = _wait(proc)
            text = report.read(64).decode(errors="replace").split()
        return status, int(text[0]) if text and text[0].isdigit() else None


def host_files(keys: KeyValues) -> list[str]:
    """The host files the run's keys name (keys whose metavar is ``FILE``: ``--tls-cert``), absolute.

    The application's read-only root holds these besides the artifact's own files.
    """
    files = []
    for name, key in keys.keys.items():
        value = keys.raw(name) if key.metavar == "FILE" and not key.per_device else None
        if value:
            files.append(os.path.abspath(value))
    return sorted(set(files))


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for ``proc``, forwarding SIGINT and SIGTERM to it."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    try:
        for signum in previous:
            signal.signal(signum, forward)
    except ValueError:  # not the main thread
        previous = {}
    try:
        return proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
