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
UNIK_RUNTIME = ("unik_entropy.device", "unik_entropy.helpers")


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """``random`` (Fortuna) and the built-in ``entropy`` source."""
    return PROVIDERS


@hookimpl
def unik_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``unik random -n BYTES``."""
    from .cli import add_parser

    add_parser(subparsers)


@hookimpl
def unik_image_contents(plan: Plan) -> ImageContents | None:
    """virtio-rng in VM images whose plan uses this library."""
    if not any(node.provider.startswith("entropy.") for node in plan.nodes):
        return None
    return ImageContents(
        kernel_modules=("virtio_rng",),
        kernel_config=("CONFIG_HW_RANDOM=y", "CONFIG_HW_RANDOM_VIRTIO=y"),
    )
