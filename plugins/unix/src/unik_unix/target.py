"""The unix target: emit a self-contained executable zip, run it as a process.

The artifact is ``dist/<name>-unix/<name>.pyz``: a zip with a shebang whose
``__main__.py`` unpacks the payload (once, atomically) into
``$XDG_CACHE_HOME/unik/unix/<digest>/`` — C extensions cannot be imported from a zip —
and runs the generated ``main.py`` there.  The zip is reproducible: entries are sorted
and carry a fixed timestamp.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unik.errors import RunError
from unik.inventory import Content, classify_bundle
from unik.keys import KeyValues
from unik.plan import Plan
from unik.progress import counted
from unik.target import Artifact, BuildContext, Check, RunContext, Target, check_disk_image

from .providers import BLOCK, IPV4, NET, Block, SocketStack, Tap

# The bundle's walker and the ELF normaliser (a build's) and the TAP machinery (a run
# with TAPs') are imported where used: `unik configure -t unix` needs none of them.

#: The earliest time a zip entry can carry (1980-01-01), in seconds since 1970.
_ZIP_EPOCH_S = 315532800


def tap_names(devices: list[dict[str, Any]], keys: KeyValues) -> dict[str, str]:
    """The TAP of each network device on a TAP (``auto`` for one the runner creates).

    ``devices`` are the manifest's (``name``, ``provider``); a plain ``--net=tap`` means
    the TAP named after the device, as :class:`~unik_fdio.tap.TapNetwork` reads it.
    """
    out: dict[str, str] = {}
    for d in devices:
        if d.get("provider") != Tap.PLUGIN_NAME:
            continue
        given = keys.raw("net", d["name"]) if "net" in keys.keys else None
        out[d["name"]] = d["name"] if given in (None, "tap", "socket") else str(given)
    return out

BOOTSTRAP = '''\
"""Unpack this unik artifact into a cache directory once, then run its main.py."""
import os, runpy, shutil, sys, tempfile, zipfile

DIGEST = {digest!r}


def _unpack():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = os.path.join(cache, "unik", "unix", DIGEST)
    if os.path.isfile(os.path.join(root, "main.py")):
        return root
    os.makedirs(os.path.dirname(root), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=DIGEST + ".", dir=os.path.dirname(root))
    with zipfile.ZipFile(os.path.dirname(os.path.abspath(__file__))) as zf:
        for info in zf.infolist():
            if info.filename.startswith("payload/") and not info.is_dir():
                target = os.path.join(tmp, info.filename[len("payload/"):])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.chmod(target, (info.external_attr >> 16) & 0o777 or 0o644)
    try:
        os.rename(tmp, root)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return root


root = _unpack()
sys.path.insert(0, root)
os.environ.setdefault("UNIK_PROG", os.path.basename(sys.argv[0]))
sys.argv[0] = os.path.join(root, "main.py")
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def _zip_entry(zf: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    zf.writestr(_zip_info(name, mode), data, compresslevel=6)


def _zip_time() -> tuple[int, int, int, int, int, int]:
    """The time every entry carries: ``SOURCE_DATE_EPOCH`` (UTC), not before 1980 (zip's first year)."""
    from unik.reproducible import source_date_epoch

    t = time.gmtime(max(source_date_epoch(), _ZIP_EPOCH_S))
    return t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec


def _zip_info(name: str, mode: int, size: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_zip_time())
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size = size  # lets zipfile choose ZIP64 up front for a file over 2 GiB
    return info


def _zip_file(zf: zipfile.ZipFile, name: str, source: Path, mode: int) -> bytes:
    """Copy ``source`` into the zip 1 MiB at a time (baked files may be large); its SHA-256.

    A C extension goes in stripped, with a build ID of its content (:mod:`unik.reproducible`):
    its debugging data would name the directory it was compiled in.
    """
    h = hashlib.sha256()
    if source.suffix == ".so":
        from unik.reproducible import normalised_elf

        data = normalised_elf(source)
        _zip_entry(zf, name, data, mode)
        return hashlib.sha256(data).digest()
    with source.open("rb") as src, zf.open(_zip_info(name, mode, source.stat().st_size), "w") as dst:
        while block := src.read(1 << 20):
            h.update(block)
            dst.write(block)
    return h.digest()


class UnixTarget(Target):
    """The application as a Unix process."""

    PLUGIN_NAME = "unix"
    reports_started = True
    description = "a Unix process: host sockets or a TAP device, files as disks, stdout"
    keys = (NET, BLOCK, IPV4)

    def emit(self, plan: Plan, ctx: BuildContext) -> Artifact:
        """Write ``dist/<name>-unix/<name>.pyz``."""
        from unik.bundle import runtime_files

        files = runtime_files(plan, ctx.build_dir)
        ctx.progress.info(f"packaging {counted(len(files), 'file')}")
        digest = hashlib.sha256()
        out = ctx.artifact_dir(plan)
        pyz = out / f"{plan.app.name}.pyz"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        with pyz.open("wb") as f:  # written as it goes: the payload is never whole in memory
            f.write(f"#!/usr/bin/env python{version}\n".encode())
            with zipfile.ZipFile(f, "w", compresslevel=6) as zf:
                for bf in files:
                    mode = 0o755 if os.access(bf.source, os.X_OK) and bf.source.suffix == ".so" else 0o644
                    digest.update(bf.dest.encode() + b"\0" + _zip_file(zf, "payload/" + bf.dest, bf.source, mode))
                _zip_entry(zf, "__main__.py", BOOTSTRAP.format(digest=digest.hexdigest()[:16]).encode())
        pyz.chmod(0o755)
        manifest = {
            "python": version,
            "files": len(files),
            "bytes": pyz.stat().st_size,
            "digest": digest.hexdigest(),
            "devices": [{"name": n.name, "kind": n.kind, "provider": n.provider} for n in plan.nodes],
        }
        return Artifact("unix", out, pyz.name, manifest)

    def preflight(self, plan: Plan, keys: KeyValues, ctx: RunContext) -> None:
        """Disks exist and can be opened, TAPs named exist, the socket stack's ``--ipv4`` is the host's.

        ``--net DEVICE=auto`` needs ``--ipv4`` (the host side's address comes from it).
        """
        for node in plan.nodes:
            if node.provider == Block.PLUGIN_NAME:
                bound = keys.raw("block", device=node.name) if "block" in keys.keys else None
                path = bound or node.options.get("file")
                if not path:
                    raise RunError(f"block device {node.name!r} needs a file: unik run --block {node.name}=FILE, "
                                   f"or file = \"...\" in [tool.unik.devices.{node.name}]")
                check_disk_image(node.name, path, writable=not node.options.get("read_only"))
            elif node.provider == Tap.PLUGIN_NAME:
                from unik.hostnet import AUTO, auto_address, require_tap

                ifname = tap_names([{"name": node.name, "provider": node.provider}], keys)[node.name]
                if ifname == AUTO:
                    auto_address(node.name, keys)  # refused before building when it cannot work
                else:
                    require_tap(node.name, ifname)
            elif node.provider == SocketStack.PLUGIN_NAME and "ipv4" in keys.keys and keys.raw("ipv4"):
                from .socket_stack import check_bind_address

                check_bind_address(str(keys.raw("ipv4")))

    def inspect(self, artifact: Artifact) -> tuple[list[Content], dict[str, str]]:
        """The zip's payload by kind (sizes unpacked), the bootstrap, the zip itself."""
        if not artifact.path.is_file():
            raise RunError(f"{artifact.path} is missing: run `unik build`")
        with zipfile.ZipFile(artifact.path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            names = {i.filename for i in infos}
            plan = json.loads(zf.read("payload/plan.json")) if "payload/plan.json" in names else None
        payload = [(i.filename[len("payload/"):], i.file_size) for i in infos if i.filename.startswith("payload/")]
        contents = classify_bundle(payload, plan)
        contents += [Content(i.filename, i.file_size, "generated") for i in infos
                     if not i.filename.startswith("payload/")]
        facts = {"zip": f"{artifact.path.name}, {artifact.path.stat().st_size} bytes compressed",
                 "python": str(artifact.manifest.get("python", "?")),
                 "unpacks into": f"$XDG_CACHE_HOME/unik/unix/{str(artifact.manifest.get('digest', ''))[:16]}/"}
        return contents, facts

    def run(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> int:
        """Run the zip with this Python, keys as options; return its exit status.

        Each TAP named must exist; ``--net DEVICE=auto`` creates one for the run.
        """
        if not artifact.path.exists():
            raise RunError(f"{artifact.path} is missing: run `unik build`")
        if ctx.dry_run:  # the command as it would run, without making TAPs
            return self._run(artifact, keys, ctx)
        with contextlib.ExitStack() as taps:
            for device, ifname in tap_names(artifact.manifest.get("devices", []), keys).items():
                from unik.hostnet import AUTO, AutoTap, auto_address, require_tap

                if ifname == AUTO:
                    tap = taps.enter_context(AutoTap(device, auto_address(device, keys)))
                    ctx.progress.info(f"network device {device}: {tap.summary}")
                    keys = keys.with_args({"net": [f"{device}={tap.ifname}"]})
                else:
                    require_tap(device, ifname)
            return self._run(artifact, keys, ctx)

    def _run(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> int:
        cmd = [sys.executable, str(artifact.path), *keys.as_args(), *ctx.extra_args]
        # UNIK_PROJECT_ROOT: tracebacks name the project's files by their full paths (unik.runtime.name_sources)
        names = {"UNIK_PROG": artifact.path.name, "UNIK_PROJECT_ROOT": str(ctx.root)}
        if ctx.dry_run:
            return ctx.show_command(cmd, names)
        env = dict(os.environ, **names)
        from unik.instances import process_start  # the instance records: a run's, not a build's

        proc = subprocess.Popen(cmd, env=env)
        ctx.started(child_pid=proc.pid, child_pid_start=process_start(proc.pid))
        forwarded = {signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)}

        def forward(signum: int, _frame: object) -> None:
            proc.send_signal(signum)

        try:
            for signum in forwarded:
                signal.signal(signum, forward)
        except ValueError:  # not the main thread: signals stay as they are
            forwarded = {}
        try:
            status = proc.wait()
        finally:
            for signum, handler in forwarded.items():
                signal.signal(signum, handler)
        return status if status >= 0 else 128 - status

    def doctor(self) -> Sequence[Check]:
        """What running applications as processes needs here: TAP networking is the only option that asks."""
        from .doctor import doctor_checks

        return doctor_checks()
