"""A fresh virtualenv installs unik and the unix plugin from the wheelhouse alone and runs hello."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from example_support import copy_example
from wheel_support import Wheelhouse, offline_pip_env, run


def version_of(wheel: Path) -> str:
    return wheel.name.split("-")[1]


@pytest.mark.slow
def test_fresh_venv_installs_from_wheels_alone_and_runs_hello(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    py, bin_dir = venv / "bin" / "python", venv / "bin"
    env = offline_pip_env(wheelhouse.path, XDG_CACHE_HOME=str(tmp_path / "cache"), VIRTUAL_ENV=str(venv))
    env["PATH"] = f"{bin_dir}:{env['PATH']}"

    run([py, "-m", "pip", "install", "--no-index", "--find-links", wheelhouse.path, "unik-core", "unik-target-unix"],
        env=env)

    listed = json.loads(run([py, "-m", "pip", "list", "--format=json"], env=env).stdout)
    installed = {d["name"]: d["version"] for d in listed}
    assert installed["unik-core"] == version_of(wheelhouse.core)
    assert installed["unik-target-unix"] == version_of(wheelhouse.unix)
    # Installed from the wheels, not from this checkout's sources, C accelerators included.
    where = run([py, "-c", "import unik, unik_fdio._block as b; print(unik.__file__); print(b.__file__)"],
                env=env, cwd=tmp_path).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    assert where[1].endswith(".so")

    app = copy_example("hello", tmp_path)
    unik = bin_dir / "unik"
    run([unik, "configure", "-t", "unix"], cwd=app, env=env)
    run([unik, "build"], cwd=app, env=env)
    proc = subprocess.run([str(unik), "run"], cwd=app, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["hello"] * 4


@pytest.mark.slow
def test_fresh_venv_builds_an_application_offline_with_build_from_the_wheelhouse(
    wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    # `build` and its dependencies are in the wheelhouse; its isolated environment gets
    # setuptools, unik-core (the backend) and unik-target-unix from there too.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    env = offline_pip_env(wheelhouse.path, XDG_CACHE_HOME=str(tmp_path / "cache"), VIRTUAL_ENV=str(venv))
    run([py, "-m", "pip", "install", "--no-index", "--find-links", wheelhouse.path, "build"], env=env)
    app = copy_example("hello", tmp_path)
    run([py, "-m", "build", "--wheel", "-C", "unik-target=unix"], cwd=app, env=env)
    assert (app / "dist" / "hello-0.1.0-py3-none-any.whl").is_file()
    pyz = app / "dist" / "hello-unix" / "hello.pyz"
    proc = subprocess.run([str(py), str(pyz)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["hello"] * 4


def test_fdio_wheel_is_manylinux_with_its_c_extensions(wheelhouse: Wheelhouse) -> None:
    assert wheelhouse.core.name.endswith("-py3-none-any.whl")
    assert wheelhouse.unix.name.endswith("-py3-none-any.whl")  # its C data paths are unik-lib-fdio's
    shown = " ".join(run([sys.executable, "-m", "auditwheel", "show", wheelhouse.fdio]).stdout.split())
    tag = re.search(r'is consistent with the following platform tag: "(manylinux_[^"]+)"', shown)
    assert tag, shown
    assert tag.group(1) in wheelhouse.fdio.name  # the repaired tag is the one auditwheel vouches for
    with zipfile.ZipFile(wheelhouse.fdio) as zf:
        names = zf.namelist()
    for ext in ("_tap", "_block", "_packet"):
        assert any(re.fullmatch(rf"unik_fdio/{ext}\.cpython-[^/]+\.so", n) for n in names), names
