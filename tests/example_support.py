"""What several suites need to make applications under test: copies of the examples, small apps."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from host_tools import missing

REPO = Path(__file__).resolve().parents[1]


def copy_example(name: str, dest: Path) -> Path:
    """A private copy of ``examples/<name>`` under ``dest``, without build outputs."""
    target = dest / name
    shutil.copytree(REPO / "examples" / name, target,
                    ignore=shutil.ignore_patterns("_build", "dist", "build", "*.egg-info", "__pycache__"))
    return target


def write_app(dest: Path, name: str, source: str, package: str | None = None) -> Path:
    """An application ``name`` under ``dest/name`` whose package (``<name>_app`` unless named) holds ``source``."""
    package = package or f"{name}_app"
    root = dest / name
    (root / "src" / package).mkdir(parents=True)
    (root / "src" / package / "__init__.py").write_text(source)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "{name}"
        version = "0.1.0"

        [tool.unik]
        main = "{package}:start"
    """))
    return root


def missing_vm_tools() -> str | None:
    """Why VM images cannot be built and booted here (``None``: they can)."""
    return missing("qemu-system-x86_64", "apt-get", "dpkg-deb")
