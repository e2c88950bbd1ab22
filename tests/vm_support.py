"""What the VM suites (tests/virtio, tests/xen) share: running `unik`, building for a VM target, the tools check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from example_support import copy_example, missing_vm_tools, write_app

UNIK = str(Path(sys.executable).with_name("unik"))
#: A boot under TCG takes seconds; this bounds a whole `unik` command in the tests.
RUN_TIMEOUT_S = 240.0


def unik(*args: str, cwd: Path, timeout: float = RUN_TIMEOUT_S, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `unik` command (``env``: extra variables); ``check`` raises with its output when it fails."""
    proc = subprocess.run([UNIK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"unik {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def build_for(target: str, root: Path, *configure_args: str, env: dict[str, str] | None = None) -> Path:
    """Configure ``root`` for ``target`` and build it; the artifact directory."""
    unik("configure", "-t", target, *configure_args, cwd=root, env=env)
    unik("build", cwd=root, env=env)
    return next((root / "dist").glob(f"*-{target}"))


def require_vm_tools(suite: str) -> None:
    """Skip, naming what is missing, when VM images cannot be built and booted here."""
    why = missing_vm_tools()
    if why:
        pytest.skip(f"{suite} tests need QEMU and apt: {why}")


def built_example(target: str, example: str, factory: pytest.TempPathFactory, *configure_args: str) -> Path:
    """A private copy of ``examples/<example>`` configured and built for ``target``."""
    root = copy_example(example, factory.mktemp(example))
    build_for(target, root, *configure_args)
    return root


def built_app(target: str, name: str, source: str, factory: pytest.TempPathFactory, *configure_args: str) -> Path:
    """A small application ``name`` (its package's source: ``source``) configured and built for ``target``."""
    root = write_app(factory.mktemp(name), name, source)
    build_for(target, root, *configure_args)
    return root


# --- the suites' session fixtures, declared in their conftest.py by these factories ---------


def tools_fixture(suite: str) -> Any:
    """The session fixture ``tools``: skips, naming what is missing, without QEMU or the Debian tools."""
    @pytest.fixture(scope="session", name="tools")
    def tools() -> None:
        require_vm_tools(suite)
    return tools


def example_fixture(name: str, target: str, example: str, *configure_args: str) -> Any:
    """A session fixture ``name``: ``examples/<example>`` configured and built for ``target``, once."""
    @pytest.fixture(scope="session", name=name)
    def built(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return built_example(target, example, tmp_path_factory, *configure_args)
    return built


def app_fixture(name: str, target: str, app: str, source: str, *configure_args: str) -> Any:
    """A session fixture ``name``: the small application ``app`` (``source``) built for ``target``, once."""
    @pytest.fixture(scope="session", name=name)
    def built(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return built_app(target, app, source, tmp_path_factory, *configure_args)
    return built
