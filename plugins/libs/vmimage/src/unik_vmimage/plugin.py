"""The plugin module registered under the entry-point group ``unik``: kernel providers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unik.hookspecs import hookimpl

from .kernels import KERNEL_PROVIDERS

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"


@hookimpl
def unik_register_kernels() -> Sequence[type[Any]]:
    """The ``debian``, ``path`` and ``source`` kernel providers."""
    return KERNEL_PROVIDERS
