"""Each plugin declares the modules that run inside an artifact (``UNIK_RUNTIME``); they stay run-time code.

What builds an image and what runs inside it are different code: a declared module,
with all it imports, loads none of the configure tool (pluggy, packaging, the composer,
providers, targets), which would lengthen every unikernel's start-up under emulation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from unik.plugins import PluginInfo
from unik.testing import PluginRegistry

#: The configure tool: never imported by code that runs inside an artifact.
BUILD_TIME = {
    "pluggy", "packaging", "importlib.metadata", "tomllib", "tomli", "unik.plugins", "unik.hookspecs",
    "unik.compose", "unik.project", "unik.provider", "unik.target", "unik.application", "unik.codegen",
    "unik.bundle", "unik.cli",
}


REPO = Path(__file__).resolve().parents[2]


def _ours(pm: PluginRegistry) -> dict[str, PluginInfo]:
    """The plugins of this repository (not the test suites' fakes), loaded."""
    pm.load()
    return {name: info for name, info in sorted(pm.plugins.items())
            if Path(sys.modules[info.module].__file__ or "/").resolve().is_relative_to(REPO / "core")
            or Path(sys.modules[info.module].__file__ or "/").resolve().is_relative_to(REPO / "plugins")}


def _plugins() -> dict[str, list[str]]:
    return {name: info.runtime or [] for name, info in _ours(PluginRegistry(entry_points=True)).items()}


@pytest.mark.parametrize("plugin", sorted(_plugins()))
def test_declared_runtime_modules_load_no_build_time_code(plugin: str) -> None:
    modules = _plugins()[plugin]
    code = (f"import importlib, json, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & BUILD_TIME, f"{plugin}'s UNIK_RUNTIME {modules} loads build-time modules"
    own = plugin if plugin == "unik" else None
    host_only = {m for m in loaded if m.split(".")[-1] in ("plugin", "providers", "target", "doctor", "emit")}
    assert not host_only, f"{plugin}'s run-time modules import {sorted(host_only)}"
    assert own is None or "unik.runtime" in loaded


def test_every_provider_implementation_is_declared_run_time_code() -> None:
    """A plugin's implementations are in its UNIK_RUNTIME; a library without a plugin (unik-lib-fdio) loads clean."""
    pm = PluginRegistry(entry_points=True)
    ours = _ours(pm)
    assert all(info.runtime is not None for info in ours.values()), "every plugin here declares UNIK_RUNTIME"
    runtime = {m for info in ours.values() for m in info.runtime or []}
    packages = {info.module.split(".")[0]: name for name, info in ours.items()}
    others: set[str] = set()
    for name, cls in pm.providers().items():
        if pm.owner("unik_register_providers", name).name not in ours:
            continue
        module = cls.implementation.split(":")[0]
        if module.split(".")[0] in packages:
            assert module in runtime, f"provider {name}: {module} is not in its plugin's UNIK_RUNTIME"
        else:
            others.add(module)
    code = (f"import importlib, json, sys\nfor m in {sorted(others)!r}:\n    importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not set(json.loads(out.stdout)) & BUILD_TIME, f"{sorted(others)} load build-time modules"
