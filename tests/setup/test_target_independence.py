"""Targets depend on the core and on libraries, never on another target.

Every distribution under ``plugins/`` is read from its sources, not from what is
installed: its ``pyproject.toml`` dependencies, the modules its Python files import
(``import x`` and ``from x import ...`` anywhere, function-level imports included) and
the ``"module:Class"`` implementation strings its providers hand to the generated
``main.py``.  An edge from a ``unik-target-*`` distribution to another one fails, naming
the file and the line; the shared code belongs in a library both use (issue 18).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))  # the walk is tools/depgraph.py's, which also draws it for the docs

from depgraph import TARGET_PREFIX, declared, distributions, edges  # noqa: E402


def test_the_walk_sees_every_distribution_and_its_edges() -> None:
    names = {d.name for d in distributions()}
    assert {"unik-target-unix", "unik-target-virtio", "unik-target-xen", "unik-target-solo5",
            "unik-lib-vmimage", "unik-lib-fdio", "unik-lib-tcpip"} <= names
    found = {(a, b) for a, b, _ in edges()}
    # the walk finds real edges, declared and imported: a vacuous graph would pass below
    assert ("unik-target-unix", "unik-lib-fdio") in found
    assert ("unik-target-virtio", "unik-lib-vmimage") in found


def test_imports_that_cross_distributions_are_declared_dependencies() -> None:
    deps = {(d.name, dep) for d in distributions() for dep, _ in declared(d)}
    undeclared = sorted({(a, b, w) for a, b, w in edges(optional=False)
                         if not w.endswith("pyproject.toml") and (a, b) not in deps})
    assert undeclared == [], "\n".join(f"{w}: {a} uses {b} without depending on it" for a, b, w in undeclared)


@pytest.mark.parametrize("dist", [d.name for d in distributions() if d.name.startswith(TARGET_PREFIX)])
def test_no_target_depends_on_another_target(dist: str) -> None:
    bad = [(b, w) for a, b, w in edges() if a == dist and b.startswith(TARGET_PREFIX)]
    assert bad == [], "\n".join(f"{w}: {dist} -> {b}: move the shared code into a library both use" for b, w in bad)
