"""Targets depend on the core and on libraries, never on another target.

Every distribution under ``plugins/`` is read from its sources, not from what is
installed: its ``pyproject.toml`` dependencies, the modules its Python files import
(``import x`` and ``from x import ...`` anywhere, function-level imports included) and
the ``"module:Class"`` implementation strings its providers hand to the generated
``main.py``.  An edge from a ``unik-target-*`` distribution to another one fails, naming
the file and the line; the shared code belongs in a library both use (issue 18).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
TARGET_PREFIX = "unik-target-"
#: An implementation string a provider names: ``"package.module:Class"``.
_IMPLEMENTATION = re.compile(r"[\"']([A-Za-z_][\w.]*):[A-Za-z_]\w*[\"']")


@dataclass(frozen=True)
class Distribution:
    """A distribution of the repository: its name, directory and top-level import packages."""

    name: str
    root: Path
    packages: frozenset[str]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions() -> list[Distribution]:
    """Every plugin distribution under ``plugins/`` (targets and libraries)."""
    out = []
    for pyproject in sorted([*REPO.glob("plugins/*/pyproject.toml"), *REPO.glob("plugins/libs/*/pyproject.toml")]):
        root = pyproject.parent
        name = _normalise(tomllib.loads(pyproject.read_text())["project"]["name"])
        src = root / "src"
        packages = frozenset(p.name for p in src.iterdir()
                             if (p / "__init__.py").is_file() or (p.suffix == ".py" and p.is_file()))
        out.append(Distribution(name, root, packages))
    return out


def _declared(dist: Distribution) -> list[tuple[str, str]]:
    """``(dependency, where)`` for each ``project.dependencies`` entry."""
    project = tomllib.loads((dist.root / "pyproject.toml").read_text())["project"]
    where = str((dist.root / "pyproject.toml").relative_to(REPO))
    deps = project.get("dependencies", [])
    return [(_normalise(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0]), where) for dep in deps]


def _optional(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside ``try:`` bodies that catch ImportError: imports that may fail."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            out |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return out


def _imported(dist: Distribution, *, optional: bool = True) -> list[tuple[str, str]]:
    """``(top-level module, file:line)`` for every import and implementation string in the sources.

    ``optional=False`` leaves out imports guarded by ``except ImportError``.
    """
    out = []
    for path in sorted((dist.root / "src").rglob("*.py")):
        if ".egg-info" in str(path):
            continue
        source = path.read_text()
        where = str(path.relative_to(REPO))
        tree = ast.parse(source, str(path))
        skip = set() if optional else _optional(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                out += [(alias.name.split(".")[0], f"{where}:{node.lineno}") for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out.append((node.module.split(".")[0], f"{where}:{node.lineno}"))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = _IMPLEMENTATION.fullmatch(repr(node.value))
                if match:
                    out.append((match.group(1).split(".")[0], f"{where}:{node.lineno}"))
    return out


def edges(*, optional: bool = True) -> list[tuple[str, str, str]]:
    """``(from distribution, to distribution, where)`` between plugin distributions of the repository.

    ``optional=False`` leaves out imports guarded by ``except ImportError``.
    """
    dists = distributions()
    owner = {package: d.name for d in dists for package in d.packages}
    names = {d.name for d in dists}
    out = []
    for dist in dists:
        for dep, where in _declared(dist):
            if dep in names and dep != dist.name:
                out.append((dist.name, dep, where))
        for module, where in _imported(dist, optional=optional):
            to = owner.get(module)
            if to is not None and to != dist.name:
                out.append((dist.name, to, where))
    return out


def test_the_walk_sees_every_distribution_and_its_edges() -> None:
    names = {d.name for d in distributions()}
    assert {"unik-target-unix", "unik-target-virtio", "unik-target-xen", "unik-target-solo5",
            "unik-lib-vmimage", "unik-lib-fdio", "unik-lib-tcpip"} <= names
    found = {(a, b) for a, b, _ in edges()}
    # the walk finds real edges, declared and imported: a vacuous graph would pass below
    assert ("unik-target-unix", "unik-lib-fdio") in found
    assert ("unik-target-virtio", "unik-lib-vmimage") in found


def test_imports_that_cross_distributions_are_declared_dependencies() -> None:
    declared = {(d.name, dep) for d in distributions() for dep, _ in _declared(d)}
    undeclared = sorted({(a, b, w) for a, b, w in edges(optional=False)
                         if not w.endswith("pyproject.toml") and (a, b) not in declared})
    assert undeclared == [], "\n".join(f"{w}: {a} uses {b} without depending on it" for a, b, w in undeclared)


@pytest.mark.parametrize("dist", [d.name for d in distributions() if d.name.startswith(TARGET_PREFIX)])
def test_no_target_depends_on_another_target(dist: str) -> None:
    bad = [(b, w) for a, b, w in edges() if a == dist and b.startswith(TARGET_PREFIX)]
    assert bad == [], "\n".join(f"{w}: {dist} -> {b}: move the shared code into a library both use" for b, w in bad)
