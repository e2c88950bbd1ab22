"""``unik.build_meta``: an application's ``python -m build`` makes its wheel and, on request, its artifact.

The builds are isolated, as users run them: ``build`` creates a fresh environment and pip
installs ``setuptools`` and ``unik-core`` (and, for ``-C unik-target=unix``, the plugin) into
it from the test wheelhouse alone.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from example_support import copy_example
from wheel_support import Wheelhouse, offline_pip_env, run

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

BUILD_SYSTEM = '[build-system]\nrequires = ["setuptools>=68", "unik-core"]\nbuild-backend = "unik.build_meta"\n'


def application(tmp_path: Path) -> Path:
    """Return a copy of examples/hello whose build backend is ``unik.build_meta``."""
    app = copy_example("hello", tmp_path)
    pyproject = app / "pyproject.toml"
    text = re.sub(r"(?ms)^\[build-system\]\n.*?(?=^\[|\Z)", "", pyproject.read_text())
    pyproject.write_text(BUILD_SYSTEM + "\n" + text.lstrip())
    build_system = tomllib.loads(pyproject.read_text())["build-system"]
    assert build_system == {"requires": ["setuptools>=68", "unik-core"], "build-backend": "unik.build_meta"}
    return app


def build(app: Path, wheelhouse: Wheelhouse, tmp_path: Path, *settings: str) -> Path:
    """Run an isolated ``python -m build --wheel`` in ``app``; return its one wheel."""
    env = offline_pip_env(wheelhouse.path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    run([sys.executable, "-m", "build", "--wheel", *(f"-C{s}" for s in settings)], cwd=app, env=env)
    (wheel,) = (app / "dist").glob("*.whl")
    return wheel


@pytest.mark.slow
def test_build_makes_the_wheel_only(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    app = application(tmp_path)
    wheel = build(app, wheelhouse, tmp_path)
    assert wheel.name == "hello-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        assert "hello/__init__.py" in zf.namelist()
    assert sorted(p.name for p in (app / "dist").iterdir()) == [wheel.name]


@pytest.mark.slow
def test_build_with_unik_target_also_makes_the_artifact(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    app = application(tmp_path)
    wheel = build(app, wheelhouse, tmp_path, "unik-target=unix")
    assert wheel.name == "hello-0.1.0-py3-none-any.whl"
    pyz = app / "dist" / "hello-unix" / "hello.pyz"
    assert pyz.is_file()
    # Self-contained: the bare interpreter (-I: no environment, -S: no site-packages) runs it.
    base_python = getattr(sys, "_base_executable", sys.executable)
    proc = subprocess.run([base_python, "-I", "-S", str(pyz)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["hello"] * 4


@pytest.mark.slow
def test_pip_wheel_writes_the_artifact_to_unik_out(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    # pip hands the backend a temporary output directory: -C unik-out names where the artifact goes.
    app = application(tmp_path)
    out = tmp_path / "artifacts"
    env = offline_pip_env(wheelhouse.path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheels"),
         "-C", "unik-target=unix", "-C", f"unik-out={out}", "."], cwd=app, env=env)
    assert (tmp_path / "wheels" / "hello-0.1.0-py3-none-any.whl").is_file()
    assert (out / "hello-unix" / "hello.pyz").is_file()


@pytest.mark.slow
def test_pip_wheel_without_unik_out_stops_before_building_and_says_why(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    # pip would keep only the wheel from its temporary directory: the artifact must not vanish silently.
    app = application(tmp_path)
    env = offline_pip_env(wheelhouse.path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheels"),
                           "-C", "unik-target=unix", "."], cwd=app, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    output = " ".join((proc.stdout + proc.stderr).split())
    assert "-C unik-target=unix: pip keeps only the wheel" in output, output
    assert "pass -C unik-out=DIR" in output, output
    assert not (tmp_path / "wheels").exists() or not any((tmp_path / "wheels").iterdir())
    assert not (app / "_build").exists()  # stopped before configuring anything
