"""The files a running application needs, for emitters to package.

:func:`runtime_files` lists, for a plan, every file an artifact must carry: the
generated ``main.py`` and ``plan.json`` (its paths relative to the project's directory:
:func:`artifact_plan`), the application's package, the Python
packages of every distribution in the plan and of the application's dependencies
(their closure), and the baked files.  Targets package them their own way (a zipapp,
an initramfs).  The order is sorted and stable, so artifacts are reproducible.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .builders import NOT_FOLLOWED, normalise
from .errors import BuildError

if TYPE_CHECKING:
    from .plan import Plan
    from .pydeps import Site

# importlib.metadata and packaging are imported by the functions that read
# distributions: target plugins import this module, and every command loads them.

_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".c", ".h"}


@dataclass(frozen=True, order=True)
class BundleFile:
    """``dest`` inside the artifact, copied from ``source`` on the host."""

    dest: str
    source: Path
    #: The distribution it belongs to (the application's name for its own files), for size reports.
    distribution: str = field(default="", compare=False)


def _top_level_by_distribution() -> dict[str, set[str]]:
    from importlib import metadata

    out: dict[str, set[str]] = {}
    for top, dists in metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(normalise(dist), set()).add(top)
    return out


def distribution_closure(names: Iterable[str]) -> list[str]:
    """``names`` and every installed distribution they require at run time, sorted."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    seen: set[str] = set()
    todo = [normalise(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in NOT_FOLLOWED:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            raise BuildError(
                f"distribution {name!r} is needed at run time but is not installed: pip install {name}"
            ) from None
        for text in requires:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(normalise(req.name))
    return sorted(seen)


def _package_files(top: str, origin: Path | None = None, dirs: list[Path] | None = None,
                   distribution: str = "") -> list[BundleFile]:
    if origin is None:
        spec = importlib.util.find_spec(top)
        if spec is None:
            raise BuildError(f"cannot find the installed package {top!r}")
        if spec.submodule_search_locations:
            origin = Path(next(iter(spec.submodule_search_locations)))
        elif spec.origin:
            origin = Path(spec.origin)
        else:
            raise BuildError(f"package {top!r} has no files on disk (namespace package?)")
    if origin.is_file():
        return [BundleFile(origin.name, origin, distribution)]
    files = []
    if dirs is not None:
        dirs.append(origin)
    for path in sorted(origin.rglob("*")):
        rel = path.relative_to(origin)
        if _SKIP_DIRS & set(rel.parts):
            continue
        if path.is_dir():
            if dirs is not None:
                dirs.append(path)
            continue
        if path.suffix in _SKIP_SUFFIXES:
            continue
        files.append(BundleFile(f"{top}/{rel.as_posix()}", path, distribution))
    return files


def _app_files(plan: Plan, dirs: list[Path]) -> list[BundleFile]:
    files: list[BundleFile] = []
    for top in plan.app.packages:
        for d in plan.app.source_dirs:
            pkg, mod = Path(d) / top, Path(d) / f"{top}.py"
            dirs.append(Path(d))
            if pkg.is_dir():
                files += _package_files(top, pkg, dirs, plan.app.name)
                break
            if mod.is_file():
                files += _package_files(top, mod, dirs, plan.app.name)
                break
        else:
            raise BuildError(f"application package {top!r} not found in {', '.join(plan.app.source_dirs)}")
    return files


def runtime_distributions(plan: Plan) -> list[str]:
    """Every distribution of the host the running application imports from: unik's and their needs.

    The application's other dependencies are pip's to install (:mod:`unik.pydeps`).
    """
    from .pydeps import is_unik, requirement_name

    deps = [name for name in map(requirement_name, plan.app.dependencies) if is_unik(name)]
    return distribution_closure([*plan.distributions, *deps])


def runtime_files(plan: Plan, build_dir: Path) -> list[BundleFile]:
    """Everything an artifact of ``plan`` must contain, sorted by destination."""
    return runtime_inputs(plan, build_dir)[0]


def runtime_inputs(plan: Plan, build_dir: Path) -> tuple[list[BundleFile], list[Path]]:
    """:func:`runtime_files`, and the directories they were found in.

    A file added to or removed from a package changes the mtime of one of those
    directories: with them and :func:`unik.cache.metadata_stamp`, a caller can tell that the
    list is still the same without listing it again.
    """
    files: dict[str, BundleFile] = {}
    dirs: list[Path] = []

    def add(items: Iterable[BundleFile]) -> None:
        for f in items:
            files.setdefault(f.dest, f)

    add([BundleFile("main.py", build_dir / "main.py"), BundleFile("plan.json", artifact_plan(plan, build_dir))])
    add(_app_files(plan, dirs))
    tops = _top_level_by_distribution()
    for dist in runtime_distributions(plan):
        for top in sorted(tops.get(dist, ())):
            if top.startswith("__editable__"):  # finders of editable installs
                continue
            add(_package_files(top, dirs=dirs, distribution=dist))
    add(_site_files(plan, dirs))
    add(BundleFile(f.dest, Path(f.source), BAKED) for f in plan.files)
    return [files[d] for d in sorted(files)], dirs


def artifact_plan(plan: Plan, build_dir: Path) -> Path:
    """``plan.json`` as the artifact carries it (:meth:`~unik.plan.Plan.portable`), written beside the plan.

    Rewritten only when its text changes, so that its time stamp says when it last did.
    """
    path = build_dir / ARTIFACT_PLAN
    text = plan.portable().dumps()
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


#: The file in ``_build/<target>/`` holding the artifact's ``plan.json``.
ARTIFACT_PLAN = "plan.artifact.json"

#: The size report's name for the files the plan bakes in.
BAKED = "(baked files)"


def _site_files(plan: Plan, dirs: list[Path]) -> list[BundleFile]:
    """The application's third-party dependencies, as pip installed them (:func:`unik.pydeps.ensure`)."""
    from .pydeps import ensure

    site = ensure(plan.app.dependencies)
    return [] if site is None else site_files(site, dirs)


def site_files(site: Site, dirs: list[Path] | None = None) -> list[BundleFile]:
    """The files an artifact carries of the installation ``site`` (its directories added to ``dirs``).

    Targets check an installation found at configure time with it (:func:`unik.pydeps.installed`)
    the way they check the files :func:`runtime_files` lists, without waiting for pip.
    """
    owner = site.distribution_of()
    files: list[BundleFile] = []
    for entry in site.entries():
        dist = owner.get(entry.name, "")
        if entry.is_dir():
            files += _package_files(entry.name, entry, dirs, dist)
        elif entry.suffix not in _SKIP_SUFFIXES:
            files.append(BundleFile(entry.name, entry, dist))
    return files


def dependency_modules(files: Iterable[BundleFile]) -> list[str]:
    """Every module of the application's third-party dependencies (as pip installed them) among ``files``, sorted.

    They import one another by name at run time (uvicorn picks its protocol modules
    with ``importlib``), so image builders that trim the standard library follow the
    imports of them all, not only of those ``main.py`` reaches.
    """
    from .pydeps import deps_root

    root = deps_root()
    out = set()
    for f in files:
        if not f.dest.endswith(".py") or not f.source.is_relative_to(root):
            continue
        parts = f.dest[:-3].split("/")
        if parts[-1] == "__init__":
            parts.pop()
        if parts and all(p.isidentifier() for p in parts):
            out.add(".".join(parts))
    return sorted(out)


@dataclass(frozen=True)
class DistributionSize:
    """What one distribution adds to an artifact, as bundled (before compiling or compressing)."""

    name: str
    files: int
    bytes: int


def size_report(files: Iterable[BundleFile]) -> list[DistributionSize]:
    """The artifact's files grouped by distribution, largest first."""
    sizes: dict[str, list[int]] = {}
    for f in files:
        entry = sizes.setdefault(f.distribution or "(generated)", [0, 0])
        entry[0] += 1
        entry[1] += f.source.stat().st_size
    return sorted((DistributionSize(name, n, size) for name, (n, size) in sizes.items()),
                  key=lambda d: (-d.bytes, d.name))
