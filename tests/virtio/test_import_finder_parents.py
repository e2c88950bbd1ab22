"""The image's import finder locates a package before scanning what imports its submodules."""

from __future__ import annotations

from pathlib import Path

from unik_vmimage.imports import find_modules


def test_a_submodule_imported_while_its_grandparent_is_scanned_is_found(tmp_path: Path) -> None:
    # `import pkg.abc` first: pkg is scanned while pkg.abc is being located, and pkg's
    # own imports reach pkg.abc._tasks (anyio's shape: anyio/_core imports ..abc._tasks).
    for name, text in {
        "main.py": "import pkg.abc\n",
        "pkg/__init__.py": "from ._core.util import helper\n",
        "pkg/_core/__init__.py": "",
        "pkg/_core/util.py": "from ..abc._tasks import name\n\ndef helper():\n    return name\n",
        "pkg/abc/__init__.py": "from ._tasks import name\n",
        "pkg/abc/_tasks.py": "name = 'tasks'\n",
    }.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    found = find_modules(tmp_path / "main.py", [tmp_path])
    assert {"pkg", "pkg.abc", "pkg.abc._tasks", "pkg._core.util"} <= set(found.modules)
    assert not [m for m in found.missing if m.startswith("pkg")]
