"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from unik.hookspecs import hookimpl
from unik.provider import Provider

from .providers import PROVIDERS

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The ``tls`` providers: certificates from files (``tls.files``) or from a store (``tls.kv``)."""
    return PROVIDERS


@hookimpl
def unik_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``unik tls selfsigned``."""
    from .cli import add_parser

    add_parser(subparsers)
