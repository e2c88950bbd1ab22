"""The plugin module registered under the entry-point group ``unik``: kernel providers."""

from __future__ import annotations

from collections.abc import Sequence

from unik.hookspecs import hookimpl
from unik.kernel import KernelProvider

from .kernels import KERNEL_PROVIDERS

#: The core API range this plugin supports.
UNIK_API = ">=1.0,<2"
#: The modules that run inside an artifact (with what they import); the rest is build-time code.
UNIK_RUNTIME = ("unik_vmimage.guest.block", "unik_vmimage.guest.console", "unik_vmimage.guest.random")


@hookimpl
def unik_register_kernels() -> Sequence[type[KernelProvider]]:
    """The ``debian``, ``path`` and ``source`` kernel providers."""
    return KERNEL_PROVIDERS
