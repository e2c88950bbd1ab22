"""``unik new --plugin``: the scaffold builds into a wheel with its C part, passes its own tests on
the conformance suite, installs into a fresh environment and serves an application composed there."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from wheel_support import Wheelhouse, offline_pip_env, run

APP = '''\
"""Writes a sector of the plugin's RAM disk and reads it back."""

from unik.devices import Block, Console


async def start(scratch: Block, console: Console) -> None:
    await scratch.write(3, b"unik" * 128)
    data = await scratch.read(3, 1)
    console.log(f"{type(scratch).__name__} {scratch.sectors} sectors: {data[:4].decode()}")
'''

TABLE = '''
[tool.unik.devices.scratch]
kind = "block"
sectors = 64
'''


@pytest.mark.slow
def test_the_plugin_scaffold_builds_installs_and_composes(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    dev_unik = [sys.executable, "-m", "unik.cli"]
    run([*dev_unik, "-C", tmp_path, "new", "--plugin", "ramdisk-demo"])
    plugin = tmp_path / "ramdisk-demo"
    env = offline_pip_env(wheelhouse.path, XDG_CACHE_HOME=str(tmp_path / "cache"))

    # The wheel, built offline (setuptools from the wheelhouse), carries the compiled C part.
    out = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, plugin], env=env)
    (wheel,) = out.glob("ramdisk_demo-0.1.0-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("ramdisk_demo/_fill.cpython") and n.endswith(".so") for n in names), names
    entry_points = zipfile.ZipFile(wheel).read("ramdisk_demo-0.1.0.dist-info/entry_points.txt").decode()
    assert "[unik]" in entry_points and "ramdisk_demo = ramdisk_demo.plugin" in entry_points

    # Its own tests: unik's Block conformance suite on the RAM disk, the twins compared.
    site = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", site, wheel], env=env)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                            plugin / "tests"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env={**env, "PYTHONPATH": str(site)})
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "passed" in tests.stdout and "skipped" not in tests.stdout and "failed" not in tests.stdout

    # A fresh environment: unik, the unix target and the plugin, from wheels alone.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    bin_dir = venv / "bin"
    venv_env = {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{bin_dir}:{env['PATH']}"}
    run([bin_dir / "python", "-m", "pip", "install", "--find-links", out, "unik-core", "unik-target-unix",
         "ramdisk-demo"], env=venv_env)
    plugins = {p["name"]: p for p in json.loads(run([bin_dir / "unik", "plugins"], env=venv_env).stdout)}
    assert plugins["ramdisk_demo"]["runtime"] == ["ramdisk_demo.ramdisk"], plugins["ramdisk_demo"]
    assert "error" not in plugins["ramdisk_demo"]

    # An application composed with it: the plan picks the plugin's provider, the artifact runs it.
    run([bin_dir / "unik", "-C", tmp_path, "new", "scratchapp"], env=venv_env)
    app = tmp_path / "scratchapp"
    (app / "src" / "scratchapp" / "__init__.py").write_text(APP)
    (app / "pyproject.toml").write_text((app / "pyproject.toml").read_text() + TABLE)
    run([bin_dir / "unik", "configure", "-t", "unix"], cwd=app, env=venv_env)
    plan = json.loads(run([bin_dir / "unik", "query", "plan"], cwd=app, env=venv_env).stdout)
    (scratch,) = [n for n in plan["devices"] if n["name"] == "scratch"]
    assert scratch["provider"] == "ramdisk_demo.ramdisk" and scratch["distribution"] == "ramdisk-demo"
    run([bin_dir / "unik", "build"], cwd=app, env=venv_env)
    proc = subprocess.run([str(bin_dir / "unik"), "run"], cwd=app, env=venv_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["RamDisk 64 sectors: unik"]


def test_plugin_scaffold_refuses_an_existing_directory_and_bad_names(tmp_path: Path) -> None:
    from unik.errors import UnikError
    from unik.scaffold_plugin import new_plugin

    root = new_plugin("mine", tmp_path)
    assert (root / "src" / "mine" / "_fill.c").is_file()
    with pytest.raises(UnikError, match="already exists"):
        new_plugin("mine", tmp_path)
    with pytest.raises(UnikError, match="Python keyword"):
        new_plugin("class", tmp_path)
