"""Standard library C modules that Debian ships as shared objects, built into the hvt unikernel.

Debian links most of CPython's C modules into ``libpython3.11.a`` but ships others as
shared objects in ``lib-dynload``, which a static unikernel without a dynamic loader cannot
load, and no binary package holds their sources.  Built in here: the OpenSSL modules
(``_ssl``, ``_hashlib``) and the accelerators that need no other library (``_asyncio``,
``_json``, ``_queue``, ``_typing``, ``_zoneinfo``, ``_multiprocessing``, which uvicorn
imports); ``_decimal`` (libmpdec), ``_ctypes``
(libffi, and a dynamic loader), ``_sqlite3``, ``_bz2``, ``_lzma``, ``mmap``, the CJK codecs
and the rest are not.  ``unik build`` therefore takes them from Debian's *source* package of the
installed CPython (``python3.11``, through ``apt-get source`` with a private ``deb-src``
list made from the host's Debian entries, Debian's patches applied), once, keeping only
the few files these modules compile from in ``~/.cache/unik/hvt/cpython-<version>``;
compiles them there against the installed headers, and the unikernel links them (the
OpenSSL ones with the static ``libssl.a``/``libcrypto.a`` of libssl-dev) and registers
them as built-ins.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from unik.cache import cache_dir
from unik.errors import BuildError
from unik.progress import Progress

SOURCE_PACKAGE = "python3.11"
#: The binary package whose static library the unikernel links: the sources must be its version.
BINARY_PACKAGE = "libpython3.11-dev"
PY_INCLUDE = Path("/usr/include/python3.11")
#: Built-in module name -> its source in CPython's ``Modules/``.
MODULES: dict[str, tuple[str, ...]] = {
    "_ssl": ("_ssl.c",), "_hashlib": ("_hashopenssl.c",), "_asyncio": ("_asynciomodule.c",), "_json": ("_json.c",),
    "_queue": ("_queuemodule.c",), "_typing": ("_typingmodule.c",), "_zoneinfo": ("_zoneinfo.c",),
    "_multiprocessing": ("_multiprocessing/multiprocessing.c", "_multiprocessing/semaphore.c"),
}
#: Modules compiled through a file of this package that includes CPython's source, and the
#: built-in modules that file adds beside it (``hvt/ssl_groups.c``: ``_unik_ssl_groups``).
WRAPPERS = {"_ssl": (Path(__file__).with_name("hvt") / "ssl_groups.c", ("_unik_ssl_groups",))}
#: What they compile from (``Modules/``-relative), all that is kept of the source tree.
KEPT = ("_ssl.c", "_ssl.h", "_ssl", "_ssl_data.h", "_ssl_data_111.h", "_ssl_data_300.h", "socketmodule.h",
        "_hashopenssl.c", "hashlib.h", "clinic/_ssl.c.h", "clinic/_hashopenssl.c.h",
        "_asynciomodule.c", "clinic/_asynciomodule.c.h", "_json.c", "_queuemodule.c", "clinic/_queuemodule.c.h",
        "_typingmodule.c", "clinic/_typingmodule.c.h", "_zoneinfo.c", "_multiprocessing")
#: pyconfig.h says Debian built _socket with Bluetooth, whose headers (libbluetooth-dev) only
#: size a sockaddr union that _ssl never touches: included first, then the two defines dropped.
PREINCLUDE = "#include <pyconfig.h>\n#undef HAVE_BLUETOOTH_BLUETOOTH_H\n#undef HAVE_BLUETOOTH_H\n"
LIBS = ("-lssl", "-lcrypto")
FETCH_TIMEOUT = 900.0


def installed_version() -> str:
    """The Debian version of the installed CPython's source package (that of ``libpython3.11-dev``)."""
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${source:Version}", BINARY_PACKAGE],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"cannot ask dpkg which {BINARY_PACKAGE} is installed: {exc}") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise BuildError(f"{BINARY_PACKAGE} is not installed: apt-get install {BINARY_PACKAGE}")
    return proc.stdout.strip()


def upstream(version: str) -> str:
    """The upstream part of a Debian version (``3.11.2-6+deb12u6`` -> ``3.11.2``)."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def deb_src_entries(sources: Sequence[Path]) -> str:
    """The host's Debian archive entries again, as deb822 ``deb-src`` stanzas.

    Reads deb822 ``.sources`` files and the one-line format of ``sources.list`` and
    ``*.list`` (what Debian 12's installer writes).  Only Debian's own archive is taken:
    a deb822 entry signed by Debian's archive keyring, a one-line entry signed by it or,
    without ``signed-by``, served from a ``debian.org`` host; a third-party repository
    (Google's, NodeSource's) has no source index to offer.
    """
    out = []
    for path in sources:
        text = path.read_text()
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                lines = [line for line in stanza.splitlines() if line.strip() and not line.lstrip().startswith("#")]
                fields = dict(line.split(":", 1) for line in lines if ":" in line)
                if "debian-archive-keyring" not in fields.get("Signed-By", "") or \
                        "deb" not in fields.get("Types", "").split():
                    continue
                out.append("\n".join("Types: deb-src" if line.startswith("Types:") else line for line in lines))
        else:
            out += [stanza for line in text.splitlines() if (stanza := _one_line_entry(line))]
    return "\n\n".join(out) + "\n" if out else ""


def _one_line_entry(line: str) -> str | None:
    """A one-line ``deb [options] URI SUITE COMPONENT...`` entry of Debian's archive as a ``deb-src`` stanza."""
    match = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line.split("#", 1)[0])
    if match is None:
        return None
    options = dict(o.split("=", 1) for o in (match[1] or "").split() if "=" in o)
    uri, suite, components = match[2], match[3], match[4].split()
    signed = options.get("signed-by", "")
    host = re.sub(r"^[a-z+]+://(?:[^@/]*@)?", "", uri).split("/", 1)[0].split(":", 1)[0]
    if not (("debian-archive-keyring" in signed) or (not signed and (host == "debian.org"
                                                                      or host.endswith(".debian.org")))):
        return None
    stanza = ["Types: deb-src", f"URIs: {uri}", f"Suites: {suite}"]
    if components:
        stanza.append(f"Components: {' '.join(components)}")
    if signed:
        stanza.append(f"Signed-By: {signed}")
    return "\n".join(stanza)


def host_sources() -> list[Path]:
    """The host's apt source files: ``sources.list``, then ``sources.list.d``'s ``*.list`` and ``*.sources``."""
    main, parts = Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")
    listed = sorted([*parts.glob("*.list"), *parts.glob("*.sources")]) if parts.is_dir() else []
    return ([main] if main.is_file() else []) + listed


def _apt(state: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    opts = ["-q", "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={state / 'parts'}",
            "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
            "-o", "APT::Sandbox::User=root"]
    return subprocess.run([args[0], *opts, *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=FETCH_TIMEOUT)


def _fetch(version: str, dest: Path, progress: Progress) -> str:
    """Keep :data:`KEPT` of Debian's ``python3.11`` source of ``version`` in ``dest``; the version taken.

    If the archive no longer has ``version``, the newest with the same upstream version.
    """
    entries = deb_src_entries(host_sources())
    if not entries:
        raise BuildError("building _ssl into an hvt unikernel needs Debian's python3.11 source package, and "
                         "neither /etc/apt/sources.list nor /etc/apt/sources.list.d has an entry of Debian's "
                         "archive (a deb.debian.org line, or one signed by debian-archive-keyring) to find it in")
    with tempfile.TemporaryDirectory(prefix="unik-hvt-src-") as tmp:
        state = Path(tmp)
        for sub in ("parts", "lists/partial", "cache/archives/partial", "src"):
            (state / sub).mkdir(parents=True)
        (state / "parts" / "debian-src.sources").write_text(entries)
        with progress.step("fetching the index of Debian's source packages (about 10 MB, once)"):
            proc = _apt(state, "apt-get", "update")
            if proc.returncode != 0:
                raise BuildError(f"apt-get update (deb-src) failed: {proc.stderr.strip()}")
        shown = _apt(state, "apt-cache", "showsrc", SOURCE_PACKAGE).stdout
        listed: list[str] = re.findall(r"^Version: (\S+)$", shown, re.M)
        same = sorted({v for v in listed if upstream(v) == upstream(version)} - {version},
                      key=_version_key, reverse=True)
        candidates = ([version] if version in listed else []) + same
        if not candidates:
            raise BuildError(f"Debian's archive has no {SOURCE_PACKAGE} source of CPython {upstream(version)} "
                             f"(it lists {', '.join(listed) or 'none'}); the installed {BINARY_PACKAGE} is "
                             f"{version}")
        errors = []
        for candidate in candidates:
            with progress.step(f"fetching Debian's {SOURCE_PACKAGE} {candidate} source (about 26 MB, once)"):
                proc = _apt(state, "apt-get", "source", f"{SOURCE_PACKAGE}={candidate}", cwd=state / "src")
            trees = [p for p in (state / "src").iterdir() if p.is_dir()]
            if proc.returncode == 0 and trees:
                modules = trees[0] / "Modules"
                staging = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
                shutil.copy2(trees[0] / "LICENSE", staging / "LICENSE")  # the PSF licence they come under
                for rel in KEPT:
                    src, out = modules / rel, staging / "Modules" / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    if src.is_dir():
                        shutil.copytree(src, out)
                    elif src.exists():
                        shutil.copy2(src, out)
                (staging / "source.json").write_text(json.dumps({"package": SOURCE_PACKAGE, "version": candidate,
                                                                 "for": version}) + "\n")
                shutil.rmtree(dest, ignore_errors=True)
                staging.rename(dest)
                return candidate
            errors.append(f"{candidate}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
            for p in (state / "src").iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    raise BuildError(f"apt-get source {SOURCE_PACKAGE} failed: {'; '.join(errors)}")


def _version_key(version: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", version)]


def source_dir(progress: Progress) -> Path:
    """The kept part of Debian's CPython source for the installed ``libpython3.11-dev``, fetched if needed."""
    version = installed_version()
    dest = cache_dir() / "hvt" / f"cpython-{version}"
    if not (dest / "source.json").is_file() or not all((dest / "Modules" / rel).exists() for rel in KEPT):
        dest.parent.mkdir(parents=True, exist_ok=True)
        _fetch(version, dest, progress)
    return dest


def objects(progress: Progress) -> list[tuple[str, Path]]:
    """(module name, object file) of each of :data:`MODULES`, compiled once into the cache.

    Builds running at once (a test suite's workers, the first time) take turns: one fetches
    and compiles, the others then find its files.
    """
    lock = cache_dir() / "hvt" / "stdlib.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        return _objects(progress)


def _objects(progress: Progress) -> list[tuple[str, Path]]:
    root = source_dir(progress)
    modules = root / "Modules"
    pre = root / "preinclude.h"
    if not pre.exists():
        pre.write_text(PREINCLUDE)
    out: list[tuple[str, Path]] = []
    for name, sources in MODULES.items():
        wrapper, also = WRAPPERS.get(name, (None, ()))
        for source in sources:
            compiled = wrapper or modules / source
            # keyed by what it is compiled from: a changed wrapper (a newer unik) compiles again
            digest = hashlib.sha256(compiled.read_bytes()).hexdigest()[:12]
            obj = root / f"{Path(source).stem}-{digest}.o"
            if not obj.exists():
                tmp = obj.with_name(f"{obj.name}.{os.getpid()}.tmp")
                cmd = ["gcc", "-O2", "-fno-strict-aliasing", "-include", str(pre), f"-I{PY_INCLUDE}",
                       f"-I{PY_INCLUDE / 'internal'}", f"-I{modules}", f"-I{compiled.parent}", "-c", str(compiled),
                       "-o", str(tmp)]
                with progress.step(f"compiling CPython's {name} module ({source}) for hvt, once"):
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise BuildError(f"compiling {compiled} failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")
                tmp.rename(obj)
            # the module's name goes with its first object (its PyInit_); every object is linked
            out += [(module, obj) for module in (name, *also)] if source == sources[0] else [("", obj)]
    return out
