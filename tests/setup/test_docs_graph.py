"""docs/dependencies.dot, the picture in docs/architecture.md, is the graph the sources make today."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from depgraph import to_dot  # noqa: E402


def test_the_committed_graph_matches_the_code() -> None:
    committed = (REPO / "docs" / "dependencies.dot").read_text()
    assert committed == to_dot(), "the distributions' dependencies changed: run `make docs-graph` and commit docs/"
    assert (REPO / "docs" / "dependencies.svg").is_file()
    assert "dependencies.svg" in (REPO / "docs" / "architecture.md").read_text()


def test_the_graph_has_every_distribution_and_no_target_to_target_edge() -> None:
    dot = to_dot()
    for name in ("unik-core", "unik-lib-tcpip", "unik-lib-fdio", "unik-target-unix", "unik-target-solo5"):
        assert f'"{name}" [label=' in dot
    edges = [line.strip() for line in dot.splitlines() if "->" in line]
    assert '"unik-target-unix" -> "unik-core";' in edges
    assert not [e for e in edges if e.split("->")[1].strip().startswith('"unik-target-')]
    assert '"unik-lib-tcpip" -> "unik-lib-entropy";' not in edges  # entropy gets timings through the runtime
    # spt's seal reaches unik-lib-entropy through the runtime's BEFORE_SEAL, not an import.
    assert '"unik-target-solo5" -> "unik-lib-entropy";' not in edges
