"""hvt refuses, with the reason, what its static CPython cannot load: shared objects without their sources."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

UNIK = str(Path(sys.executable).with_name("unik"))


def _build(root: Path) -> subprocess.CompletedProcess[str]:
    """Configure and build for hvt: configure's refusal when pip had installed the dependencies, else the build's."""
    proc = subprocess.run([UNIK, "configure", "-t", "hvt"], cwd=root, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return proc
    return subprocess.run([UNIK, "build"], cwd=root, capture_output=True, text=True, timeout=600)


def test_a_dependency_with_a_shared_object_is_refused_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "parse"
    (root / "src" / "parse_app").mkdir(parents=True)
    (root / "src" / "parse_app" / "__init__.py").write_text(textwrap.dedent("""\
        from unik.devices import Console

        async def start(console: Console) -> None:
            import httptools
            console.log(httptools.__version__)
    """))
    (root / "pyproject.toml").write_text('[project]\nname = "parse"\nversion = "0.1"\ndependencies = ["httptools"]\n\n'
                                         '[tool.unik]\nmain = "parse_app:start"\n')
    proc = _build(root)
    assert proc.returncode != 0
    assert "no dynamic loader can load them): httptools (httptools/parser/" in proc.stderr, proc.stderr
