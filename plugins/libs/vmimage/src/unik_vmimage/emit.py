"""What every VM target's emitter does the same way: resolve the kernel's modules, write the initramfs.

A target (virtio, xen) walks the plan for its own devices, then calls, in order::

    kernel_build = prepare_kernel(plan, ctx, kernel, modules, compression)
    ...                                 # its own checks on the (now specialised) kernel
    report = write_initramfs(plan, ctx, kernel_build, out, mounts, links)

What builds and boots the image is not guest code and stays out of it: unik-lib-vmimage
itself (the image builder, the QEMU runner, the init's C source) and the target's own
package (``host_packages``); the guest's devices are unik-lib-vmguest's and
unik-lib-fdio's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from unik.bundle import dependency_modules, runtime_files
from unik.hookspecs import ImageContents
from unik.keys import Key, KeyValues
from unik.plan import Plan
from unik.target import BuildContext

if TYPE_CHECKING:  # the image builder loads when a target emits, not when `unik run` starts
    from .initramfs import ImageReport
    from .kernels import Kernel

#: The initramfs file's suffix for each compression.
SUFFIXES = {"zstd": ".zst", "gzip": ".gz", "xz": ".xz", "none": ""}
#: The image builder's own package: host code, never in the image.
NOT_IN_IMAGE = ("unik_vmimage/",)


def plan_key(keys: KeyValues, key: Key) -> str | None:
    """A build key as configured, else its default (a plan keeps only keys it uses)."""
    return keys.raw(key.name) if key.name in keys.keys else key.default


def link_or_copy(source: Path, dest: Path) -> None:
    """``dest`` as a hard link to the cached ``source`` (tens of MB), else a copy."""
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


@dataclass(frozen=True)
class KernelBuild:
    """The kernel side of an image: its module files, the compression, the libraries' contributions."""

    module_files: list[Path]
    compression: str
    contents: dict[str, ImageContents]


def prepare_kernel(plan: Plan, ctx: BuildContext, kernel: Kernel, modules: list[str],
                   compression: str) -> KernelBuild:
    """Add the libraries' kernel modules to the target's, specialise ``kernel`` and resolve the module files.

    zstd falls back to gzip, with a warning, where the zstd command is missing.
    """
    from .initramfs import zstd_tool

    contents = ctx.plugins.image_contents(plan)
    modules = [*modules, *(m for c in contents.values() for m in c.kernel_modules)]
    if compression == "zstd" and zstd_tool() is None:
        ctx.progress.warn("the zstd command is not installed (apt-get install zstd): the initramfs is gzip")
        compression = "gzip"
    kernel.specialise(list(dict.fromkeys(modules)), compression, ctx.progress)
    with ctx.progress.step("resolving kernel modules"):
        module_files = kernel.module_files(dict.fromkeys(modules), ctx.progress)
    return KernelBuild(module_files, compression, contents)


def write_initramfs(plan: Plan, ctx: BuildContext, kernel_build: KernelBuild, out: Path,
                    mounts: Sequence[tuple[str, str]], links: int,
                    extra_files: dict[str, str] | None = None, host_packages: Sequence[str] = ()) -> ImageReport:
    """Write ``out/initramfs.cpio<suffix>`` (removing one of another compression) with the application.

    The packages named in ``host_packages`` (the target's own) stay out, as unik-lib-vmimage does.
    """
    from .initramfs import ImageSpec, build_initramfs

    contents = kernel_build.contents
    host = (*NOT_IN_IMAGE, *(f"{package}/" for package in host_packages))
    files = [f for f in runtime_files(plan, ctx.build_dir) if not f.dest.startswith(host)]
    spec = ImageSpec(
        app_files=files,
        python_modules=sorted({m for c in contents.values() for m in c.python_modules}
                              | set(dependency_modules(files))),
        kernel_modules=kernel_build.module_files, mounts=mounts,
        extra_files={**{dest: src for c in contents.values() for dest, src in c.files.items()},
                     **(extra_files or {})},
        compression=kernel_build.compression, links=links,
    )
    for stale in out.glob("initramfs.cpio*"):
        stale.unlink()
    return build_initramfs(spec, out / f"initramfs.cpio{SUFFIXES[kernel_build.compression]}", ctx.progress)
