"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from unik.hookspecs import ImageContents, hookimpl
from unik.provider import Provider

from .providers import PROVIDERS

if TYPE_CHECKING:
    from unik.plan import Plan

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact (with what they import); the rest is build-time code.
UNIK_RUNTIME = ("unik_tls.device",)


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The ``tls`` providers: certificates from files (``tls.files``) or from a store (``tls.kv``)."""
    return PROVIDERS


@hookimpl
def unik_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``unik tls selfsigned``."""
    from .cli import add_parser

    add_parser(subparsers)


@hookimpl
def unik_image_contents(plan: Plan) -> ImageContents | None:
    """In VM images whose plan uses TLS: ``ssl``, and the host's CA bundle where OpenSSL looks for it.

    Clients verify against the system's CAs unless given a bundle; a guest has none of
    its own, so the host's (Debian: ca-certificates) is copied to OpenSSL's default path.
    """
    if not any(node.provider.startswith("tls.") for node in plan.nodes):
        return None
    import ssl  # here: every command registers this plugin, few build a TLS image

    files: dict[str, str] = {}
    paths = ssl.get_default_verify_paths()
    for default in (paths.openssl_cafile, paths.cafile):
        if default and os.path.isfile(default):
            files[default] = os.path.realpath(default)
    return ImageContents(files=files, python_modules=("ssl", "_ssl"))
