"""The plugin module registered under the entry-point group ``unik``."""

from __future__ import annotations

import argparse
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
UNIK_RUNTIME = ("unik_fat.fs", "unik_fat.kv")


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """``fs``, ``kv_rw`` and ``kv_ro`` over a block device."""
    return PROVIDERS


@hookimpl
def unik_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``unik fat ls|cat|cp|mkdir|rm|mv|fsck|mkfs IMAGE ...``."""
    from .cli import add_parser

    add_parser(subparsers)


@hookimpl
def unik_image_contents(plan: Plan) -> ImageContents | None:
    """In VM images: the codec of each code page a FAT device names (cp437's is always there)."""
    pages = sorted({str(node.options["codepage"]) for node in plan.nodes
                    if node.provider.startswith("fat.") and node.options.get("codepage", "cp437") != "cp437"})
    if not pages:
        return None
    import codecs

    return ImageContents(python_modules=tuple(f"encodings.{codecs.lookup(p).name.replace('-', '_')}" for p in pages))

