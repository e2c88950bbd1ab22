"""unik: a library operating system for Python.

``compose(application, dependencies, implementations) -> Plan`` is the core; the
device protocols are in :mod:`unik.devices`, the plugin hooks in
:mod:`unik.hookspecs`, the ``unik`` command in :mod:`unik.cli`.

Names are imported lazily, so that a running artifact, which needs only
:mod:`unik.runtime`, does not load the composer and its dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import API_VERSION, __version__

if TYPE_CHECKING:
    from .application import Application, DeviceSpec
    from .compose import Implementation, TargetRef, compose
    from .hookspecs import ImageContents, hookimpl
    from .plan import Plan
    from .provider import Configured, KeyRef, Need, Option, Provider, Request
    from .target import Artifact, BuildContext, RunContext, Target

_LAZY = {
    "Application": "application", "DeviceSpec": "application",
    "Implementation": "compose", "TargetRef": "compose", "compose": "compose",
    "ImageContents": "hookspecs", "hookimpl": "hookspecs",
    "Plan": "plan",
    "Configured": "provider", "KeyRef": "provider", "Need": "provider", "Option": "provider",
    "Provider": "provider", "Request": "provider",
    "Artifact": "target", "BuildContext": "target", "RunContext": "target", "Target": "target",
}

__all__ = [  # the names of _LAZY, spelt out for type checkers
    "API_VERSION", "Application", "Artifact", "BuildContext", "Configured", "DeviceSpec", "ImageContents",
    "Implementation", "KeyRef", "Need", "Option", "Plan", "Provider", "Request", "RunContext", "Target",
    "TargetRef", "__version__", "compose", "hookimpl",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'unik' has no attribute {name!r}")
