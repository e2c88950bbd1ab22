"""Hook specifications: how plugins extend unik.

Registration hooks return *classes* (the hatchling pattern); the plugin manager
collects them into dictionaries keyed by ``PLUGIN_NAME`` and refuses duplicates,
naming both plugins.  Contribution hooks are called on every plugin and their
answers collected.

A plugin module declares the core API range it supports as ``UNIK_API``
(a PEP 440 specifier such as ``">=1.0,<2"``) and implements hooks marked with
:data:`hookimpl`.  It is found through the entry-point group ``unik``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .kernel import KernelProvider
    from .keys import ArgvSyntax
    from .plan import Plan
    from .provider import Provider
    from .target import Target

PROJECT = "unik"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class ImageContents:
    """What a library needs inside a VM image.

    ``files`` maps a path inside the image to a path on the host; ``kernel_modules``
    are module names to load at boot; ``kernel_config`` are Kconfig lines
    (``CONFIG_VIRTIO_NET=y``) for kernels built from source; ``python_modules`` are
    standard-library modules imported dynamically that a module finder would miss.
    """

    files: Mapping[str, str] = field(default_factory=dict)
    kernel_modules: Sequence[str] = ()
    kernel_config: Sequence[str] = ()
    python_modules: Sequence[str] = ()


@hookspec
def unik_register_targets() -> Sequence[type[Target]]:  # type: ignore[empty-body]
    """Return the target classes this plugin adds.

    :return: classes deriving from :class:`unik.target.Target`, each with a unique
        ``PLUGIN_NAME``.

    .. versionadded:: 0.1
    """


@hookspec
def unik_register_providers() -> Sequence[type[Provider]]:  # type: ignore[empty-body]
    """Return the device provider classes this plugin adds.

    :return: classes deriving from :class:`unik.provider.Provider`, each with a unique
        ``PLUGIN_NAME``.

    .. versionadded:: 0.1
    """


@hookspec
def unik_register_kernels() -> Sequence[type[KernelProvider]]:  # type: ignore[empty-body]
    """Return kernel provider classes for the VM targets (each with ``PLUGIN_NAME``).

    :return: classes satisfying :class:`unik.kernel.KernelProvider` (the VM toolkit's,
        unik-lib-vmimage, do).

    .. versionadded:: 0.1
    """


@hookspec
def unik_image_contents(plan: Plan) -> ImageContents | None:
    """Say what this plugin's libraries need inside a VM image for ``plan``.

    :param plan: the composed plan.
    :return: the contents, or ``None`` when the plugin is not part of the plan.

    .. versionadded:: 0.1
    """


@hookspec
def unik_configure(plan: Plan) -> Mapping[str, Any] | None:
    """Contribute JSON-able data to a plan after composition.

    The answer is stored in ``plan.json`` under ``contributions.<plugin>``.

    :param plan: the composed plan.

    .. versionadded:: 0.1
    """


@hookspec
def unik_argv_syntax() -> ArgvSyntax | None:
    """Return a rewriter of this plugin's command-line dialect into unik's, or ``None``.

    solo5's targets write ``--net:service=tap0`` for ``--net service=tap0``; the core
    carries no target's dialect. ``unik`` applies every plugin's rewriter, in
    registration order, before it parses a command line; a target's run-time code
    passes its own to :func:`unik.runtime.parse_args` (``syntax=``).

    .. versionadded:: 0.1
    """


@hookspec
def unik_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add subcommands to the ``unik`` command (``unik fat ls IMAGE``...).

    Each parser should set ``func`` (``parser.set_defaults(func=...)``), a callable
    taking the parsed namespace and returning an exit status.

    :param subparsers: the ``unik`` command's subparsers.

    .. versionadded:: 0.1
    """
