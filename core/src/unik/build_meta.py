"""A PEP 517 build backend: setuptools' backend, plus the unikernel artifact on request.

In an application's ``pyproject.toml``::

    [build-system]
    requires = ["setuptools>=68", "unik-core"]
    build-backend = "unik.build_meta"

``python -m build`` then builds the wheel as setuptools would, and
``python -m build -C unik-target=unix`` also configures and builds the unix artifact
into the output directory (``dist/<name>-unix/``), or into ``-C unik-out=DIR``.  Keys can be
passed as ``-C unik-key=net=socket`` (repeatable).  The target's plugin distribution is added to
the build requirements (``unik-target-<target>``) unless ``-C unik-requires=no``.

``pip wheel`` hands the backend a temporary output directory and keeps only the wheel
from it, so an artifact written there would be thrown away without a word.  Under pip
(which marks its builds with ``PIP_BUILD_TRACKER`` in the environment) ``unik-target``
therefore needs ``unik-out``, and without it the build stops before any work with a
message saying so.  Guessing another directory instead (the project's ``dist/``) would
be wrong when pip builds from an unpacked sdist in a temporary directory too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools  # type: ignore[import-untyped, unused-ignore]
from setuptools.build_meta import (  # type: ignore[import-untyped, unused-ignore]
    build_sdist,
    get_requires_for_build_sdist,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

from .errors import UnikError
from .plugins import TARGET_DISTRIBUTIONS

ConfigSettings = dict[str, Any] | None

__all__ = [
    "build_editable", "build_sdist", "build_wheel", "get_requires_for_build_editable",
    "get_requires_for_build_sdist", "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable", "prepare_metadata_for_build_wheel",
]


def _values(settings: ConfigSettings, name: str) -> list[str]:
    if not settings or name not in settings:
        return []
    value = settings[name]
    return list(value) if isinstance(value, list) else [str(value)]


def _target(settings: ConfigSettings) -> str | None:
    values = _values(settings, "unik-target")
    return values[-1] if values else None


def _refuse_temporary_out(settings: ConfigSettings, target: str) -> None:
    """Stop, with the fix, when pip would throw the artifact away (see the module's docstring)."""
    if _values(settings, "unik-out") or not os.environ.get("PIP_BUILD_TRACKER"):
        return
    raise SystemExit(
        f"unik.build_meta: -C unik-target={target}: pip keeps only the wheel from the temporary "
        f"directory it builds into, so the {target} artifact would be thrown away; "
        f"pass -C unik-out=DIR (an absolute path, e.g. -C unik-out=$PWD/dist) to say where it goes, "
        f"or build with `python -m build -C unik-target={target}`"
    )


def _unik_settings_removed(settings: ConfigSettings) -> ConfigSettings:
    if not settings:
        return settings
    return {k: v for k, v in settings.items() if not k.startswith("unik-")} or None


def get_requires_for_build_wheel(config_settings: ConfigSettings = None) -> list[str]:
    """Setuptools' requirements, plus the target plugin when an artifact is asked for."""
    requires = list(_setuptools.get_requires_for_build_wheel(_unik_settings_removed(config_settings)))
    target = _target(config_settings)
    if target:
        _refuse_temporary_out(config_settings, target)
    if target and _values(config_settings, "unik-requires") != ["no"]:
        requires.append(TARGET_DISTRIBUTIONS.get(target, f"unik-target-{target}"))
    return requires


def get_requires_for_build_editable(config_settings: ConfigSettings = None) -> list[str]:
    """Setuptools' requirements for an editable build."""
    return list(_setuptools.get_requires_for_build_editable(_unik_settings_removed(config_settings)))


def build_wheel(
    wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: str | None = None
) -> str:
    """Build the wheel; with ``unik-target``, also the artifact (into ``unik-out`` or ``wheel_directory``)."""
    target = _target(config_settings)
    if target:
        _refuse_temporary_out(config_settings, target)
    name = _setuptools.build_wheel(wheel_directory, _unik_settings_removed(config_settings), metadata_directory)
    if target:
        out = _values(config_settings, "unik-out")
        dest = Path(out[-1]).resolve() if out else Path(wheel_directory)
        build_artifact(Path.cwd(), target, dest, _values(config_settings, "unik-key"))
    return str(name)


def build_editable(
    wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: str | None = None
) -> str:
    """Build an editable wheel (no artifact)."""
    return str(_setuptools.build_editable(wheel_directory, _unik_settings_removed(config_settings), metadata_directory))


def build_artifact(root: Path, target: str, out: Path, keys: list[str]) -> Path:
    """Configure and build ``target`` for the application at ``root`` into ``out``."""
    from .plugins import PluginManager
    from .project import Project

    key_args: dict[str, list[str]] = {}
    for text in keys:
        name, sep, value = text.partition("=")
        if not sep:
            raise UnikError(f"-C unik-key={text!r}: expected NAME=VALUE (e.g. net=socket)")
        key_args.setdefault(name.replace("-", "_"), []).append(value)
    project = Project(root / "pyproject.toml", PluginManager().load())
    project.configure(target, key_args)
    return project.build(target, out).directory
