"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from unik.hookspecs import hookimpl

if TYPE_CHECKING:
    from unik.provider import Provider
    from unik.target import Target

# The target and providers (and through them the VM toolkit) are imported by the hooks
# that return them, when a command asks for virtio's (issue 18).

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact: none (its devices are unik-lib-vmguest's, unik-lib-fdio's and the core's).
UNIK_RUNTIME = ()


@hookimpl
def unik_register_targets() -> Sequence[type[Target]]:
    """The virtio target."""
    from .target import VirtioTarget

    return [VirtioTarget]


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The virtio target's devices."""
    from .providers import PROVIDERS

    return PROVIDERS
