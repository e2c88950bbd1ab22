"""unik: a library operating system for Python.

``compose(application, dependencies, implementations) -> Plan`` is the core; the
device protocols are in :mod:`unik.devices`, the plugin hooks in
:mod:`unik.hookspecs`, the ``unik`` command in :mod:`unik.cli`.
"""

from .application import Application, DeviceSpec
from .compose import Implementation, TargetRef, compose
from .hookspecs import ImageContents, hookimpl
from .plan import Plan
from .provider import Configured, KeyRef, Need, Option, Provider, Request
from .target import Artifact, BuildContext, RunContext, Target
from .version import API_VERSION, __version__

__all__ = [
    "API_VERSION", "Application", "Artifact", "BuildContext", "Configured", "DeviceSpec",
    "ImageContents", "Implementation", "KeyRef", "Need", "Option", "Plan", "Provider",
    "Request", "RunContext", "Target", "TargetRef", "__version__", "compose", "hookimpl",
]
