"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

from collections.abc import Sequence

from unik.hookspecs import hookimpl
from unik.provider import Provider
from unik.target import Target

from .providers import PROVIDERS
from .target import UnixTarget

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact (with what they import); the rest is build-time code.
UNIK_RUNTIME = ("unik_unix.socket_stack",)


@hookimpl
def unik_register_targets() -> Sequence[type[Target]]:
    """The unix target."""
    return [UnixTarget]


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The unix target's devices."""
    return PROVIDERS
