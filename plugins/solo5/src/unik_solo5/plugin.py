"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

from collections.abc import Sequence

from unik.hookspecs import hookimpl
from unik.keys import ArgvSyntax
from unik.provider import Provider
from unik.target import Target

from .hvt_providers import PROVIDERS as HVT_PROVIDERS
from .hvt_target import HvtTarget
from .providers import PROVIDERS
from .syntax import solo5_syntax
from .target import SptTarget

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact (with what they import); the rest is build-time code.
UNIK_RUNTIME = ("unik_solo5.boot", "unik_solo5.devices", "unik_solo5.hvt_net", "unik_solo5.kv", "unik_solo5.syntax")


@hookimpl
def unik_register_targets() -> Sequence[type[Target]]:
    """The spt and hvt targets."""
    return [SptTarget, HvtTarget]


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The spt and hvt targets' devices."""
    return [*PROVIDERS, *HVT_PROVIDERS]


@hookimpl
def unik_argv_syntax() -> ArgvSyntax:
    """solo5's ``--net:service=tap0`` on ``unik``'s command line."""
    return solo5_syntax
