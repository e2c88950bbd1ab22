"""A kernel built from source for a virtio plan (``--kernel source``) has what Firecracker needs.

Debian's cloud kernel lacks ``CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES``, so Firecracker's
devices (announced with ``virtio_mmio.device=`` on the command line) are found with it only
through the ACPI tables of Firecracker 1.10 and later.  Firecracker needs KVM, which cannot
boot a guest here, so the kernel is not booted under it: these tests check the
configuration — the fragment, and Kconfig's final ``.config`` from the real sources.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from host_tools import missing
from unik.cache import cache_dir
from unik.progress import Progress
from unik_virtio.providers import BASE_MODULES, Block, Entropy, Network
from unik_vmimage import source_kernel
from unik_vmimage.keys import VIRTIO_TRANSPORTS

#: The modules of a virtio image with a NIC, a disk and virtio-rng (examples/kv and http together).
VIRTIO_MODULES = (*VIRTIO_TRANSPORTS, *BASE_MODULES, *Entropy.vm.kernel_modules, *Network.vm.kernel_modules,
                  *Block.vm.kernel_modules)


def test_every_virtio_plan_asks_for_what_firecracker_needs() -> None:
    for modules in (VIRTIO_MODULES, (*VIRTIO_TRANSPORTS, *BASE_MODULES)):  # with devices, and hello's
        options = source_kernel.options_for(modules, "zstd")
        missing = {k: v for k, v in source_kernel.FIRECRACKER_OPTIONS.items() if options.get(k) != v}
        assert missing == {}, missing
    assert source_kernel.FIRECRACKER_OPTIONS["VIRTIO_MMIO_CMDLINE_DEVICES"] == "y"


def _source_tree() -> Path | None:
    root = cache_dir() / "kernels" / "source"
    trees = [t for t in root.glob("linux-source-*") if (t / ".unik-complete").is_file()]
    if trees:
        return sorted(trees)[-1]
    if os.environ.get("UNIK_TEST_KERNEL_BUILD") == "1":  # make test-kernel fetches the sources
        return source_kernel.SourceTree(root).ensure(Progress(quiet=True))[0]
    return None


@pytest.mark.slow
def test_kconfig_keeps_firecrackers_options_in_the_real_sources(tmp_path: Path) -> None:
    absent = missing("gcc", "make", "flex", "bison")
    if absent:
        pytest.skip(f"Kconfig needs them: {absent}")
    tree = _source_tree()
    if tree is None:
        pytest.skip(f"{source_kernel.SOURCE_PACKAGE} is not unpacked in ~/.cache/unik/kernels/source "
                    "(make test-kernel fetches it, about 140 MB)")
    wanted = source_kernel.options_for(VIRTIO_MODULES, "zstd")
    config = source_kernel.configure(tree, tmp_path / "build", wanted, tmp_path / "config.log")
    for name, value in source_kernel.FIRECRACKER_OPTIONS.items():
        assert config.get(name) == value, (name, config.get(name))
    assert config["MODULES"] == "n" and config["VIRTIO_NET"] == "y" and config["HW_RANDOM_VIRTIO"] == "y"
