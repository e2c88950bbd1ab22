"""The README's first paragraph and layout, and docs/architecture.md, match the tree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text()


#: What is not the project's: build products, caches, environments (git need not be installed).
_NOT_OURS = {".git", ".venv", ".venvs", "build", "_build", "dist", "wheelhouse", "__pycache__", ".pytest_cache",
             ".mypy_cache", ".ruff_cache", ".hypothesis"}


def _tracked() -> list[str]:
    """The repository's own files, relative to its root."""
    out = []
    for directory, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _NOT_OURS and not d.endswith(".egg-info")]
        out += [os.path.relpath(os.path.join(directory, f), REPO) for f in files]
    return out


def _layout() -> str:
    section = README.split("## Repository layout", 1)[1]
    return section.split("```", 2)[1]


def test_the_layout_names_every_top_level_folder_example_and_plugin() -> None:
    layout = _layout()
    folders = {path.split("/", 1)[0] for path in _tracked() if "/" in path}
    folders = {f for f in folders if not f.startswith(".") or f == ".ci"}  # .github, editors' folders
    assert {f for f in folders if f"{f}/" not in layout} == set()
    for parent in ("examples", "plugins/libs"):
        names = {p.name for p in (REPO / parent).iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
        line = next(x for x in layout.splitlines() if x.startswith(f"{parent}/"))
        assert {n for n in names if n not in line} == set(), line
    for plugin in (p for p in (REPO / "plugins").iterdir() if (p / "pyproject.toml").is_file()):
        dist = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]["name"]
        assert f'plugins/{plugin.name}/' in layout and f'"{dist}"' in layout, plugin


def test_the_first_paragraph_names_every_target_and_nothing_is_being_built() -> None:
    first = README.split("\n\n", 2)[1]
    targets = json_targets()
    assert {t for t in targets if f"(`{t}`)" not in first} == set(), first
    assert "being built" not in first


def json_targets() -> list[str]:
    unik = str(Path(sys.executable).with_name("unik"))
    return [t["name"] for t in json.loads(subprocess.run([unik, "targets", "--json"], capture_output=True,
                                                         text=True, check=True).stdout)]


def test_nothing_points_outside_the_repository() -> None:
    offenders = []
    for path in _tracked():
        file = REPO / path
        text_file = file.suffix in (".md", ".py", ".toml", ".txt", ".c", ".yml") or file.name == "Makefile"
        if text_file and re.search(r"\.\./shared|/work/shar[e]d", file.read_text(errors="replace")):
            offenders.append(path)
    assert offenders == []


def test_the_architecture_names_every_distribution_and_the_readme_points_at_it() -> None:
    for pyproject in REPO.glob("**/pyproject.toml"):
        if {"_build", ".venv", "examples", "tests", "build"} & set(pyproject.relative_to(REPO).parts):
            continue
        project = tomllib.loads(pyproject.read_text()).get("project")
        if project:
            assert f"`{project['name']}`" in ARCHITECTURE, project["name"]
    assert "[docs/architecture.md](docs/architecture.md)" in README
