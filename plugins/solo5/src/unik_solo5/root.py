"""The root an spt application's modules are imported under: empty but for what it reads.

Before a module of the application is imported, :func:`enter` makes the process's root
a fresh tmpfs holding, read-only and at their host paths, only

* the artifact's tree (``app/``: the generated ``main.py``, the application, unik and
  its plugins);
* the interpreter's own directories on ``sys.path`` (the standard library and its
  extension modules: ``python -I -S`` puts nothing else there);
* the shared libraries the interpreter, its extension modules and the artifact's load,
  as ``ldd`` listed them when the artifact was built (:func:`host_paths`, written to
  ``app/sandbox-root.json``), and ``/etc/ld.so.cache``, the loader's index of them;
* with a ``tls`` device, OpenSSL's configuration file and the process's own descriptor
  directory (``/proc/self/fd``, where unik-lib-tls shows OpenSSL its key in a memory file);
* the host files the run names in file keys (``--tls-cert``/``--tls-key``), which
  ``unik run`` passes to the tender in ``UNIK_SPT_FILES``.

Symbolic links on the way to each (``/lib`` -> ``usr/lib`` on a merged-/usr Debian) are
copied, so every path resolves as on the host.  Nothing else is there: no ``/etc``
but the loader's cache, no ``/proc``, no ``/home``, no ``/tmp``.  The tmpfs is read-only
once filled.  Sources are opened (``O_PATH``) before the tmpfs is mounted on the
artifact's directory and bound from those descriptors, so the mount point may hide them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

#: The file in the artifact listing the host files its imports need (written at build time).
ROOT_FILE = "sandbox-root.json"
#: The environment variable in which the tender passes the run's host files (one per line).
FILES_ENV = "UNIK_SPT_FILES"
#: The dynamic loader's index of libraries, read when a library is loaded by name.
LD_CACHE = "/etc/ld.so.cache"
#: The process's own descriptors (bound at ``/proc/PID/fd``, ``/proc/self`` a link to it).
PROC_FDS = "/proc/self/fd"


def host_paths(app: Path, tls: bool) -> list[str]:
    """Build time: the host files the artifact in ``app`` loads besides its tree and the standard library.

    The shared libraries (``ldd``) of the interpreter, of the standard library's extension
    modules and of the artifact's own; OpenSSL's configuration file with a ``tls`` device.
    """
    import subprocess

    # The interpreter's own path as the tender runs it (python -I -S): its standard library.
    own = subprocess.run([sys.executable, "-I", "-S", "-c", "import sys; print(*sys.path[1:], sep='\\n')"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    binaries = [Path(sys.executable).resolve()]
    for tree in (*map(Path, own), app):
        if tree.is_dir():
            binaries += sorted(tree.glob("*.so") if tree != app else tree.rglob("*.so"))
    found = set(_ldd(binaries))
    if tls:
        import ssl

        cafile = ssl.get_default_verify_paths().openssl_cafile  # OPENSSLDIR/cert.pem
        config = os.path.join(os.path.dirname(cafile), "openssl.cnf")
        if os.path.exists(config):
            found.add(config)
        # unik-lib-tls hands OpenSSL the certificate and key as /proc/self/fd/N of memory
        # files (never a file on disk): the process's own descriptors, nothing of the host's.
        found.add(PROC_FDS)
    return sorted(found)


_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def _ldd(binaries: Sequence[Path]) -> Iterable[str]:
    """The libraries ``ldd`` lists for ``binaries`` (one run for all of them)."""
    import subprocess

    proc = subprocess.run(["ldd", *map(str, binaries)], capture_output=True, text=True, timeout=120)
    for text in proc.stdout.splitlines():
        m = _LDD_LINE.match(text)
        if m:
            yield m.group(1)


def write_root_file(app: Path, tls: bool) -> None:
    """Build time: ``app/sandbox-root.json`` (see :func:`host_paths`)."""
    (app / ROOT_FILE).write_text(json.dumps({"read_only": host_paths(app, tls)}, indent=1) + "\n")


def resolve(paths: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """The symbolic links (path: target) that lead to ``paths`` and the real paths to bind.

    A path inside another bound directory is covered by it and not bound again; paths
    that do not exist are left out.
    """
    links: dict[str, str] = {}
    real: set[str] = set()
    for path in paths:
        end = _walk(os.path.abspath(path), links)
        if end is not None and os.path.exists(end):
            real.add(end)
    binds: list[str] = []
    for path in sorted(real):
        if not any(_inside(path, d) for d in binds):
            binds.append(path)
    return {p: t for p, t in sorted(links.items()) if not any(_inside(p, d) for d in binds)}, binds


def _inside(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def _walk(path: str, links: dict[str, str]) -> str | None:
    """``path`` with its symbolic links followed, recording each met in ``links``; ``None`` on a loop."""
    for _ in range(40):  # the kernel's own bound on links in one lookup
        parts = [p for p in path.split("/") if p]
        current = ""
        for i, part in enumerate(parts):
            step = f"{current}/{part}"
            if os.path.islink(step):
                target = os.readlink(step)
                links[step] = target
                base = target if target.startswith("/") else os.path.normpath(f"{current or '/'}/{target}")
                path = "/".join([base, *parts[i + 1:]])
                break
            current = step
        else:
            return current or "/"
    return None


def enter(app: Path, extra: Sequence[str] = ()) -> None:
    """Make the root a read-only tmpfs holding only what the artifact in ``app`` reads (see above).

    Call after :func:`unik_solo5._sandbox.isolate` (a mount namespace of its own).
    """
    from . import _sandbox

    app = app.resolve()
    listed = json.loads((app / ROOT_FILE).read_text())["read_only"] if (app / ROOT_FILE).is_file() else []
    own = [p for p in sys.path if p and os.path.isabs(p)]
    links, binds = resolve([str(app), *own, *listed, LD_CACHE, *extra])
    is_dir = {path: os.path.isdir(path) for path in binds}
    fds = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in binds}
    top = str(app)
    try:
        _sandbox.mount_tmpfs(top)
        for path in binds:
            inside = top + path
            os.makedirs(os.path.dirname(inside), exist_ok=True)
            if is_dir[path]:
                os.makedirs(inside, exist_ok=True)
            else:
                open(inside, "xb").close()
            _sandbox.bind_readonly(fds[path], inside)
        for path, target in links.items():
            os.makedirs(os.path.dirname(top + path), exist_ok=True)
            os.symlink(target, top + path)
        _sandbox.pivot(top)
    finally:
        for fd in fds.values():
            os.close(fd)
