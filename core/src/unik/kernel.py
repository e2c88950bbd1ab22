"""What a kernel provider is: the type of the ``unik_register_kernels`` hook.

VM targets boot a guest kernel that a *kernel provider* finds, fetches or builds
(Debian's package, a path, a kernel built from source).  The providers and the VM
toolkit that uses them live in unik-lib-vmimage; the core only states their shape, as
protocols the toolkit's classes satisfy, so that the hook is typed without the core
depending on the toolkit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from .progress import Progress


class GuestKernel(Protocol):
    """A bootable kernel: its image, version, the provider that gave it and what pins it."""

    image: Path
    version: str
    provider: str
    #: What pins exactly this kernel in ``unik.lock`` (``None``: it cannot be pinned).
    pin: dict[str, str] | None

    def specialise(self, modules: Sequence[str], compression: str, progress: Progress) -> None:
        """Adapt the kernel to a plan needing ``modules`` and ``compression`` (build one from source)."""

    def module_files(self, names: Iterable[str], progress: Progress) -> list[Path]:
        """The module files to load for ``names`` (dependencies first), none for built-in ones."""


class KernelProvider(Protocol):
    """A kernel provider class, registered with ``unik_register_kernels`` and instantiated without arguments."""

    PLUGIN_NAME: ClassVar[str]
    description: ClassVar[str]

    def kernel(self, argument: str | None, modules_dir: str | None, progress: Progress,
               pin: dict[str, str] | None = None) -> GuestKernel:
        """The kernel for ``--kernel NAME[:ARGUMENT]`` (``modules_dir`` from ``--kernel-modules``)."""
