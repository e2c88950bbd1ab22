"""The plugin module registered under the entry-point group ``unik``: kernels, ``unik push``, ``unik deploy``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from unik.hookspecs import hookimpl

if TYPE_CHECKING:
    from unik.kernel import KernelProvider

# The kernel providers are imported by the hook that returns them: `unik --help` loads
# this plugin for its commands, and only a VM build asks for kernels (issue 18).

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact: none (the image builder; the guest's are unik-lib-vmguest's).
UNIK_RUNTIME = ()


@hookimpl
def unik_register_kernels() -> Sequence[type[KernelProvider]]:
    """The ``debian``, ``path`` and ``source`` kernel providers."""
    from .kernels import KERNEL_PROVIDERS

    return KERNEL_PROVIDERS


@hookimpl
def unik_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``unik push REF`` (the built OCI image to a registry) and ``unik deploy`` (the VM image as a libvirt domain)."""
    from .deploy import add_parser as add_deploy
    from .push import add_parser

    add_parser(subparsers)
    add_deploy(subparsers)
