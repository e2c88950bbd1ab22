#!/usr/bin/env python3
"""The dependency graph of the repository's distributions, read from their sources.

Every distribution (the core and each one under ``plugins/``) is read from its files,
not from what is installed: its ``pyproject.toml`` dependencies, the modules its Python
files import (``import x`` and ``from x import ...`` anywhere, function-level imports
included) and the ``"module:Class"`` implementation strings its providers hand to the
generated ``main.py``.  tests/setup/test_target_independence.py checks the graph (no
target depends on another; every import across distributions is declared);
``make docs-graph`` draws it for docs/architecture.md::

    python tools/depgraph.py --dot docs/dependencies.dot
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
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


def distributions(*, core: bool = False) -> list[Distribution]:
    """Every plugin distribution under ``plugins/`` (targets and libraries), and the core's with ``core``."""
    out = []
    found = [*REPO.glob("plugins/*/pyproject.toml"), *REPO.glob("plugins/libs/*/pyproject.toml")]
    for pyproject in sorted([REPO / "core" / "pyproject.toml"] * core + found):
        root = pyproject.parent
        name = _normalise(tomllib.loads(pyproject.read_text())["project"]["name"])
        src = root / "src"
        packages = frozenset(p.name for p in src.iterdir()
                             if (p / "__init__.py").is_file() or (p.suffix == ".py" and p.is_file()))
        out.append(Distribution(name, root, packages))
    return out


def declared(dist: Distribution) -> list[tuple[str, str]]:
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


def edges(*, optional: bool = True, core: bool = False) -> list[tuple[str, str, str]]:
    """``(from distribution, to distribution, where)`` between plugin distributions of the repository.

    ``optional=False`` leaves out imports guarded by ``except ImportError``; ``core``
    includes the core's distribution.
    """
    dists = distributions(core=core)
    owner = {package: d.name for d in dists for package in d.packages}
    names = {d.name for d in dists}
    out = []
    for dist in dists:
        for dep, where in declared(dist):
            if dep in names and dep != dist.name:
                out.append((dist.name, dep, where))
        for module, where in _imported(dist, optional=optional):
            to = owner.get(module)
            if to is not None and to != dist.name:
                out.append((dist.name, to, where))
    return out


def _layer(name: str) -> str:
    if name.startswith("unik-target-"):
        return "targets"
    return "libraries" if name.startswith("unik-lib-") else "core"


def to_dot() -> str:
    """The graph in Graphviz's language: one box per distribution, grouped by layer, an arrow per dependency."""
    dists = distributions(core=True)
    pairs = sorted({(a, b) for a, b, _ in edges(core=True)})
    lines = [
        "// Generated by `make docs-graph` (tools/depgraph.py) from the sources: do not edit.",
        "digraph unik {",
        '  rankdir=BT; node [shape=box, style=rounded, fontname="Helvetica"]; edge [color="#555555"];',
    ]
    for layer, label in (("targets", "targets"), ("libraries", "libraries"), ("core", "core")):
        members = [d for d in dists if _layer(d.name) == layer]
        lines.append(f'  subgraph "cluster_{layer}" {{ label="{label}"; color="#bbbbbb";')
        for d in members:
            packages = ", ".join(sorted(d.packages))
            lines.append(f'    "{d.name}" [label="{d.name}\\n({packages})"];')
        lines.append("  }")
    lines += [f'  "{a}" -> "{b}";' for a, b in pairs]
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the DOT file (``--dot PATH``) or print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", type=Path, help="write the graph here (default: standard output)")
    args = parser.parse_args(argv)
    text = to_dot()
    if args.dot is None:
        sys.stdout.write(text)
    else:
        args.dot.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
