"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

from collections.abc import Sequence

from unik.hookspecs import hookimpl
from unik.provider import Provider
from unik.target import Target

from .providers import PROVIDERS
from .target import XenTarget

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact: none (its devices are unik-lib-vmguest's, unik-lib-fdio's and the core's).
UNIK_RUNTIME = ()


@hookimpl
def unik_register_targets() -> Sequence[type[Target]]:
    """The xen target."""
    return [XenTarget]


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The xen target's devices."""
    return PROVIDERS
