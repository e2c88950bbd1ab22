"""The application's third-party dependencies, installed by pip for the image's CPython.

``[project] dependencies`` name what the application imports.  unik's own
distributions (``unik-*``) come from the environment unik runs in, like the plugins
that composed the plan.  Every other requirement is handed to pip, which resolves
their closure and installs it, C extensions included (httptools, pydantic-core), for
the interpreter running unik — the one every artifact carries or runs on::

    python -m pip install --target ~/.cache/unik/deps/<key> --report ... REQUIREMENTS

The directory is named after the requirements and the interpreter's ABI, so later
builds reuse it without asking pip again (the first resolution stays until the
requirements change; remove the directory to resolve afresh); pip's downloads are
cached in ``~/.cache/unik/pip``.  Requirements that would take unik's place are
refused with the reason (:data:`REFUSED`): named in ``pyproject.toml`` when it is
loaded, pulled in by another requirement when pip has resolved them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .builders import normalise
from .cache import cache_dir
from .errors import BuildError, ConfigError

if TYPE_CHECKING:
    from .progress import Progress

#: Distributions an application cannot bring, and why.
REFUSED = {
    "uvloop": "uvloop replaces asyncio's event loop with libuv's, whose create_server and "
              "create_connection use the host's sockets and never reach unik's stack (uvicorn "
              "and aiohttp run on unik's own loop, which is asyncio's)",
}
#: How to do without each refused distribution when another requirement pulls it in.
INSTEAD = {
    "uvloop": "depend on uvicorn without the [standard] extra (list httptools and websockets "
              "yourself for speed and websockets)",
}
#: Format of the file a finished installation leaves, and of the cache key.
FORMAT = 1
MARKER = "unik-site.json"
#: What pip leaves in a --target directory that no artifact carries.
NOT_BUNDLED = ("bin", "__pycache__", MARKER)


def is_unik(name: str) -> bool:
    """True for unik's own distributions (``unik-core``, ``unik-lib-tls``...), which come from the host."""
    return normalise(name).startswith("unik-")


def requirement_name(text: str) -> str:
    """The normalised distribution name of the requirement ``text``."""
    from packaging.requirements import Requirement

    return normalise(Requirement(text).name)


def third_party(requirements: Iterable[str]) -> list[str]:
    """The requirements pip installs (all but unik's own), sorted."""
    return sorted(r for r in requirements if not is_unik(requirement_name(r)))


def check(where: str, requirements: Sequence[str]) -> None:
    """Refuse requirements that are not PEP 508 or are :data:`REFUSED` (``[project] dependencies``)."""
    if not requirements:  # most applications: spare every configure packaging's parser (~25 ms)
        return
    from packaging.requirements import InvalidRequirement, Requirement

    for text in requirements:
        try:
            name = normalise(Requirement(text).name)
        except InvalidRequirement as exc:
            raise ConfigError(where, "project", "dependencies", f"{text!r} is not a requirement: {exc}") from None
        if name in REFUSED:
            raise ConfigError(where, "project", "dependencies",
                              f"{text!r} cannot be used: {REFUSED[name]}; remove it")


@dataclass(frozen=True)
class Installed:
    """One distribution pip installed: its name, version and top-level entries in the site."""

    name: str
    version: str
    tops: tuple[str, ...]
    requested: bool


@dataclass(frozen=True)
class Site:
    """A finished installation of an application's third-party requirements."""

    path: Path
    distributions: tuple[Installed, ...]

    def distribution_of(self) -> dict[str, str]:
        """Top-level entry (package, module, ``.dist-info``) -> distribution name."""
        return {top: d.name for d in self.distributions for top in d.tops}

    def entries(self) -> list[Path]:
        """The top-level files and directories an artifact carries, sorted."""
        return sorted(p for p in self.path.iterdir() if p.name not in NOT_BUNDLED)


def _interpreter_tag() -> dict[str, str]:
    return {"cache_tag": str(sys.implementation.cache_tag), "soabi": str(sysconfig.get_config_var("SOABI")),
            "machine": platform.machine(), "version": platform.python_version()}


def deps_root() -> Path:
    """The directory of every installation (``~/.cache/unik/deps``)."""
    return cache_dir() / "deps"


def site_path(requirements: Sequence[str]) -> Path:
    """Where the requirements' installation for this interpreter lives (it may not exist yet)."""
    data = {"format": FORMAT, "requirements": sorted(requirements), "python": _interpreter_tag()}
    key = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]
    return deps_root() / key


def installed(requirements: Sequence[str]) -> Site | None:
    """The finished installation of ``requirements``, or ``None``."""
    path = site_path(requirements)
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return Site(path, tuple(Installed(d["name"], d["version"], tuple(d["tops"]), d["requested"])
                            for d in data["distributions"]))


def ensure(requirements: Sequence[str], progress: Progress | None = None) -> Site | None:
    """The installation of the third-party ``requirements``, made by pip if need be (``None``: none)."""
    wanted = third_party(requirements)
    if not wanted:
        return None
    return installed(wanted) or install(wanted, progress)


def install(requirements: Sequence[str], progress: Progress | None = None) -> Site:
    """Install ``requirements`` and their closure with pip into :func:`site_path`; refuse :data:`REFUSED`."""
    from .progress import Progress

    progress = progress or Progress(quiet=True)
    final = site_path(requirements)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.", dir=final.parent))
    try:
        report = tmp / "pip-report.json"
        site = tmp / "site"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check",
               "--prefer-binary", "--target", str(site), "--report", str(report),
               "--cache-dir", str(cache_dir() / "pip"), *requirements]
        with progress.step(f"installing the application's dependencies with pip ({', '.join(requirements)})"):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                                  env={**os.environ, "PYTHONNOUSERSITE": "1"})
        if proc.returncode != 0:
            if "No module named pip" in proc.stderr:
                raise BuildError(f"installing the application's dependencies needs pip in {sys.executable}: "
                                 f"{sys.executable} -m ensurepip")
            raise BuildError(f"pip could not install the application's dependencies "
                             f"({', '.join(requirements)}):\n{_tail(proc.stderr)}")
        items = json.loads(report.read_text()).get("install", [])
        _refuse_pulled_in(items)
        dists = _distributions(site, items)
        (site / MARKER).write_text(json.dumps({
            "format": FORMAT, "requirements": list(requirements), "python": _interpreter_tag(),
            "distributions": [{"name": d.name, "version": d.version, "tops": list(d.tops),
                               "requested": d.requested} for d in dists],
        }, indent=2, sort_keys=True) + "\n")
        try:
            site.rename(final)
        except OSError:  # another build finished the same installation first
            if installed(requirements) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done = installed(requirements)
    assert done is not None
    return done


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _refuse_pulled_in(items: list[dict[str, Any]]) -> None:
    """Refuse a :data:`REFUSED` distribution that pip's resolution pulled in, naming who wants it."""
    names = {normalise(i["metadata"]["name"]): i for i in items}
    for refused, why in REFUSED.items():
        if refused not in names:
            continue
        wanted_by = sorted(
            f"{i['metadata']['name']} {i['metadata']['version']}" for i in items
            if any(_requires(text, refused) for text in i["metadata"].get("requires_dist", []) or [])
        )
        by = f" (required by {', '.join(wanted_by)})" if wanted_by else ""
        raise BuildError(f"the application's dependencies pull in {refused}{by}, which cannot be used: "
                         f"{why}; {INSTEAD.get(refused, 'remove what requires it')}")


def _requires(text: str, name: str) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return normalise(Requirement(text).name) == name
    except InvalidRequirement:
        return False


def _distributions(site: Path, items: list[dict[str, Any]]) -> list[Installed]:
    """What pip installed into ``site``: each distribution with its top-level entries (from RECORD)."""
    from importlib import metadata

    requested = {normalise(i["metadata"]["name"]): bool(i.get("requested")) for i in items}
    out = []
    for dist in metadata.distributions(path=[str(site)]):
        name = normalise(dist.metadata["Name"])
        tops = {str(f).split("/")[0] for f in dist.files or () if not str(f).startswith("..")}
        tops -= set(NOT_BUNDLED)
        out.append(Installed(name, dist.version, tuple(sorted(tops)), requested.get(name, False)))
    return sorted(out, key=lambda d: d.name)
