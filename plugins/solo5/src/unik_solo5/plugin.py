"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from unik.hookspecs import hookimpl

if TYPE_CHECKING:
    from unik.keys import ArgvSyntax
    from unik.provider import Provider
    from unik.target import Target

# The targets and providers are imported by the hooks that return them: every `unik`
# command that reads a command line loads this plugin for its dialect (unik_argv_syntax),
# and one for unix need not import spt's and hvt's code (issue 18).

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact (with what they import); the rest is build-time code.
UNIK_RUNTIME = ("unik_solo5.boot", "unik_solo5.devices", "unik_solo5.hvt_net", "unik_solo5.kv", "unik_solo5.syntax")


@hookimpl
def unik_register_targets() -> Sequence[type[Target]]:
    """The spt and hvt targets."""
    from .hvt_target import HvtTarget
    from .target import SptTarget

    return [SptTarget, HvtTarget]


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The spt and hvt targets' devices."""
    from .hvt_providers import PROVIDERS as HVT_PROVIDERS
    from .providers import PROVIDERS

    return [*PROVIDERS, *HVT_PROVIDERS]


@hookimpl
def unik_argv_syntax() -> ArgvSyntax:
    """solo5's ``--net:service=tap0`` on ``unik``'s command line."""
    from .syntax import solo5_syntax

    return solo5_syntax
