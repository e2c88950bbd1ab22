"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from unik.hookspecs import hookimpl

if TYPE_CHECKING:
    from unik.provider import Provider
    from unik.target import Target

# The target and providers are imported by the hooks that return them (issue 18).

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact (with what they import); the rest is build-time code.
UNIK_RUNTIME = ("unik_unix.socket_stack",)


@hookimpl
def unik_register_targets() -> Sequence[type[Target]]:
    """The unix target."""
    from .target import UnixTarget

    return [UnixTarget]


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The unix target's devices."""
    from .providers import PROVIDERS

    return PROVIDERS
