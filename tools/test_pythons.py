"""Run the core and unix tests under every CPython 3.10-3.13 on this machine.

    python tools/test_pythons.py [3.10 3.12 ...] [-- PYTEST_ARGS...]

For each version, ``pythonX.Y`` is looked up on PATH.  A pyenv shim on PATH answers for
every version pyenv has installed but runs only the activated ones, so when the shim
refuses, the interpreter is taken from ``$(pyenv root)/versions/X.Y.*`` directly.  Each
found version gets ``.venvs/pyX.Y`` with the core and the unix plugin installed from a
fresh copy of their sources (the C extensions compiled for that version) plus pytest,
pytest-timeout and hypothesis, then runs ``pytest tests/core tests/unix``.  A table at the end says which versions
passed, failed or were not found; the exit status is 0 only if every found version
passed and at least one was found.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("3.10", "3.11", "3.12", "3.13")
DISTS = ("core", "plugins/unix")
NAMES = ("unik-core", "unik-target-unix")
_IGNORE = shutil.ignore_patterns("build", "dist", "_build", "*.egg-info", "__pycache__", "*.so", "*.pyc")
TEST_REQUIREMENTS = ("pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100")
TEST_PATHS = ("tests/core", "tests/unix")
PROBE = "import platform, sys; print(platform.python_implementation(), *sys.version_info[:2])"


@dataclass
class Outcome:
    """What happened to one Python version."""

    version: str
    status: str  # "passed", "FAILED", "not found"
    python: str = ""
    seconds: float = 0.0
    detail: str = ""


def log(message: str) -> None:
    """Print a progress line on stderr."""
    print(f"test-pythons: {message}", file=sys.stderr, flush=True)


def cpython_version(exe: str | Path) -> str | None:
    """Return ``"X.Y"`` if ``exe`` runs and is CPython, else None."""
    try:
        proc = subprocess.run(
            [str(exe), "-c", PROBE], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = proc.stdout.split()
    if proc.returncode != 0 or len(words) != 3 or words[0] != "CPython":
        return None
    return f"{words[1]}.{words[2]}"


def pyenv_root() -> Path | None:
    """Return pyenv's root directory, or None if pyenv is not installed."""
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if not shutil.which("pyenv"):
        return None
    proc = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
    return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def find_python(version: str) -> tuple[Path, str] | None:
    """Return the interpreter for ``version`` and where it was found, or None."""
    name = f"python{version}"
    exe = shutil.which(name)
    if exe and cpython_version(exe) == version:
        return Path(exe), "PATH"
    root = pyenv_root()
    if root is None:
        return None
    candidates = [
        p for p in (root / "versions").glob(f"{version}.*/bin/{name}")
        if re.fullmatch(rf"{re.escape(version)}\.\d+", p.parent.parent.name)
    ]
    candidates.sort(key=lambda p: int(p.parent.parent.name.rsplit(".", 1)[1]), reverse=True)
    for candidate in candidates:
        if cpython_version(candidate) == version:
            return candidate, "pyenv (shim not activated for this version)"
    return None


def clean_env(venv: Path) -> dict[str, str]:
    """Return the environment for ``venv``: its ``bin`` first, no outer venv leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", os.defpath)])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def step(cmd: Sequence[str | Path], env: dict[str, str]) -> int:
    """Run one command from the repository root, output passing through; return its status."""
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env).returncode


def test_version(version: str, python: Path, pytest_args: Sequence[str]) -> tuple[bool, str]:
    """Create or reuse ``.venvs/pyX.Y``, install, run the tests; return (passed, failed step)."""
    venv = ROOT / ".venvs" / f"py{version}"
    vpython = venv / "bin" / "python"
    if cpython_version(vpython) != version:  # missing, or its interpreter moved away
        shutil.rmtree(venv, ignore_errors=True)
        if step([python, "-m", "venv", venv], dict(os.environ)) != 0:
            return False, "venv creation"
    env = clean_env(venv)
    # Install from a private copy of the sources: an editable or in-tree build would write
    # build products (the cpython-3XX .so files) into the shared checkout, under the feet
    # of other processes using them.  One pip run installs both from these copies.
    sources = venv / "src"
    shutil.rmtree(sources, ignore_errors=True)
    for dist in DISTS:
        shutil.copytree(ROOT / dist, sources / dist, ignore=_IGNORE)
    step([vpython, "-m", "pip", "uninstall", "-q", "-y", *NAMES], env)  # reinstall from the fresh copy
    if step([vpython, "-m", "pip", "install", "-q", *TEST_REQUIREMENTS, *(sources / d for d in DISTS)], env) != 0:
        return False, "pip install"
    if step([vpython, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args, *TEST_PATHS], env) != 0:
        return False, "pytest"
    return True, ""


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, pytest_args = argv[:at], argv[at + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="*", default=list(VERSIONS), help="X.Y versions (default: all)")
    args = parser.parse_args(argv)

    outcomes: list[Outcome] = []
    for version in args.versions:
        found = find_python(version)
        if found is None:
            log(f"Python {version}: not found")
            outcomes.append(Outcome(version, "not found"))
            continue
        python, where = found
        log(f"Python {version}: {python} (from {where})")
        started = time.monotonic()
        ok, failed_step = test_version(version, python, pytest_args)
        outcomes.append(Outcome(version, "passed" if ok else "FAILED", f"{python} [{where}]",
                                time.monotonic() - started, failed_step and f"failed at {failed_step}"))

    print("\ntest-pythons: summary")
    for o in outcomes:
        timing = f"{o.seconds:6.1f}s" if o.python else " " * 7
        print(f"  Python {o.version:<5} {o.status:<10} {timing}  {o.python} {o.detail}".rstrip())
    ran = [o.version for o in outcomes if o.python]
    missing = [o.version for o in outcomes if not o.python]
    print(f"  ran: {' '.join(ran) or 'none'}; not found: {' '.join(missing) or 'none'}")
    return 0 if ran and all(o.status == "passed" for o in outcomes if o.python) else 1


if __name__ == "__main__":
    raise SystemExit(main())
