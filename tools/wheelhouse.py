"""Build a wheelhouse: every given distribution's wheel plus its third-party dependencies.

    python tools/wheelhouse.py --out wheelhouse core plugins/unix

For each distribution directory, in order:

1. copy it to a scratch directory (so the build never writes into the source tree,
   where other builds and editable installs may be running) and build its wheel with
   ``python -m build --wheel``; a distribution must build from its own directory
   alone, as it must from its sdist;
2. a pure-Python wheel (``py3-none-any``) goes to the wheelhouse as it is; a platform
   wheel (C extensions) is checked with ``auditwheel show`` and ``auditwheel repair``
   turns it into a manylinux wheel in the wheelhouse (patchelf must be on PATH).

Then ``pip wheel`` adds the wheels of every third-party run-time dependency (pluggy,
packaging, ...), of the build requirements (setuptools) and of ``build`` itself, so
that a fresh virtualenv can ``pip install --no-index --find-links wheelhouse unik-core
unik-target-unix build`` and run an isolated ``python -m build`` of an application
offline.  Our own wheels are passed to pip as files, in one invocation, so pip never
looks our names up on an index.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: What a distribution copy leaves behind: build products and caches.
_IGNORE = shutil.ignore_patterns(
    "build", "dist", "_build", "*.egg-info", "__pycache__", "*.so", "*.pyc", ".pytest_cache", ".mypy_cache"
)
#: What an offline ``python -m build`` of an application needs besides our wheels: the
#: backend's own requirement and the ``build`` front end (with its dependencies).
BUILD_REQUIREMENTS = ("setuptools>=68", "build>=1")


def log(message: str) -> None:
    """Progress on stderr, prefixed so it stands out in ``make`` output."""
    print(f"wheelhouse: {message}", file=sys.stderr, flush=True)


def tool_env() -> dict[str, str]:
    """Return the environment for tools: this interpreter's ``bin`` first on PATH.

    auditwheel looks ``patchelf`` up on PATH and needs >= 0.14.5; Debian 12's is 0.14.3,
    so requirements-dev.txt installs PyPI's ``patchelf`` beside this interpreter.
    """
    path = os.environ.get("PATH", os.defpath)
    return dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), path]))


def run(cmd: Sequence[str | os.PathLike[str]]) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, echoing it; raise with its output when it fails."""
    log("$ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], text=True, capture_output=True, env=tool_env())
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"wheelhouse: command failed with status {proc.returncode}: {cmd[0]} ...")
    return proc


def is_pure(wheel: Path) -> bool:
    """Whether ``wheel`` is platform-independent (its platform tag is ``any``)."""
    return wheel.stem.endswith("-any")


def build_wheel(dist: Path, scratch: Path, *, isolation: bool = True) -> Path:
    """Build ``dist``'s wheel from a copy of it under ``scratch``; return the wheel."""
    src = scratch / "src" / dist.name
    shutil.copytree(dist, src, ignore=_IGNORE)
    out = scratch / "raw" / dist.name
    cmd: list[str | Path] = [sys.executable, "-m", "build", "--wheel", "--outdir", out, src]
    if not isolation:
        cmd.insert(4, "--no-isolation")
    run(cmd)
    (wheel,) = out.glob("*.whl")
    return wheel


def place(wheel: Path, out: Path, scratch: Path) -> Path:
    """Put ``wheel`` into ``out``: as is when pure, else checked and repaired by auditwheel."""
    if is_pure(wheel):
        return Path(shutil.copy2(wheel, out))
    show = run([sys.executable, "-m", "auditwheel", "show", wheel])
    log(" ".join(show.stdout.split()))
    repaired = scratch / "repaired" / wheel.name
    run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", repaired, wheel])
    (fixed,) = repaired.glob("*.whl")
    return Path(shutil.copy2(fixed, out))


def add_dependencies(ours: Sequence[Path], out: Path) -> list[Path]:
    """``pip wheel`` our wheels' third-party dependencies (and the build requirements) into ``out``."""
    before = set(out.glob("*.whl"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", out, "--find-links", out,
         *ours, *BUILD_REQUIREMENTS])
    added = sorted(set(out.glob("*.whl")) - before)
    names = {w.name.split("-")[0].lower() for w in ours}
    strays = [w for w in added if w.name.split("-")[0].lower() in names]
    if strays:  # an index served one of our names: never ship that
        raise SystemExit(f"wheelhouse: pip fetched {[w.name for w in strays]} from an index")
    return added


def build_wheelhouse(
    dists: Sequence[Path], out: Path, *, deps: bool = True, isolation: bool = True
) -> list[Path]:
    """Build ``dists`` (and their dependencies) into a fresh ``out``; return our wheels."""
    if out.exists():
        others = [p.name for p in out.iterdir() if p.suffix != ".whl"]
        if others:  # never empty a directory that is not a wheelhouse (`--out .`)
            raise SystemExit(f"wheelhouse: {out} holds more than wheels ({', '.join(others[:3])}): not emptying it")
        for old in out.glob("*.whl"):
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    ours: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="unik-wheelhouse-") as tmp:
        for dist in dists:
            started = time.monotonic()
            scratch = Path(tmp) / str(len(ours))
            wheel = place(build_wheel(dist.resolve(), scratch, isolation=isolation), out, scratch)
            log(f"{wheel.name} ({time.monotonic() - started:.1f}s)")
            ours.append(wheel)
    if deps:
        for wheel in add_dependencies(ours, out):
            log(f"dependency {wheel.name}")
    return ours


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``wheelhouse.py [--out DIR] [--no-deps] [--no-isolation] DIST...``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dists", nargs="+", type=Path, help="distribution directories, dependencies first")
    parser.add_argument("--out", type=Path, default=Path("wheelhouse"), help="output directory (wheels replaced)")
    parser.add_argument("--no-deps", dest="deps", action="store_false", help="only our own wheels")
    parser.add_argument("--no-isolation", dest="isolation", action="store_false",
                        help="build with this environment's setuptools instead of an isolated one")
    args = parser.parse_args(argv)
    started = time.monotonic()
    build_wheelhouse(args.dists, args.out, deps=args.deps, isolation=args.isolation)
    wheels = sorted(p.name for p in args.out.glob("*.whl"))
    print(f"{args.out}: {len(wheels)} wheels in {time.monotonic() - started:.1f}s")
    for name in wheels:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
