"""Host commands the tests use, and the Debian package of each, from ``.ci/apt-packages``.

That file is the one list ``make deps`` installs from; a line is a package followed by the
commands it provides.  Skip hints come from here, so they name a package that exists and
that ``make deps`` installs (``ping`` is in ``iputils-ping``, ``dot`` in ``graphviz``).
Asking for a command the list does not name is an error, not a skip: add it to the list.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

APT_PACKAGES = Path(__file__).resolve().parents[1] / ".ci" / "apt-packages"


@functools.cache
def packages() -> dict[str, tuple[str, ...]]:
    """Each package of the list, with the commands it provides (``@`` tags left out)."""
    out: dict[str, tuple[str, ...]] = {}
    for line in APT_PACKAGES.read_text().splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            out[words[0]] = tuple(w for w in words[1:] if not w.startswith("@"))
    return out


def package_for(tool: str) -> str:
    """The Debian package that provides the command ``tool``."""
    for package, tools in packages().items():
        if tool in tools:
            return package
    raise LookupError(f"{APT_PACKAGES} names no package providing `{tool}`: add it to the package's line")


def missing(*tools: str) -> str | None:
    """Why one of ``tools`` cannot be run here (``None``: all are on PATH)."""
    for tool in tools:  # every command the tests use is in the list, present here or not
        package_for(tool)
    absent = [t for t in tools if shutil.which(t) is None]
    if not absent:
        return None
    wanted = sorted({package_for(t) for t in absent})
    return (f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} not installed "
            f"(apt-get install {' '.join(wanted)}, or `make deps` as root)")


def needs(*tools: str) -> pytest.MarkDecorator:
    """Skip the test, naming the package to install, unless every one of ``tools`` is on PATH."""
    reason = missing(*tools)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def require(*tools: str) -> None:
    """Inside a test: skip it, naming the package, unless every one of ``tools`` is on PATH."""
    reason = missing(*tools)
    if reason:
        pytest.skip(reason)


def missing_file(path: Path, package: str) -> str | None:
    """Why ``path``, a file of the Debian ``package`` in the list, is not here (``None``: it is)."""
    if package not in packages():
        raise LookupError(f"{APT_PACKAGES} does not list {package}: add it")
    if path.exists():
        return None
    return f"{path} is missing (apt-get install {package}, or `make deps` as root)"


def require_file(path: Path, package: str) -> None:
    """Inside a test: skip it, naming the package, unless ``path`` (a file ``package`` installs) exists."""
    reason = missing_file(path, package)
    if reason:
        pytest.skip(reason)
