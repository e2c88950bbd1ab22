"""examples/hello on a kernel built from source for its plan (``--kernel source``, Lupine-style).

Building the kernel takes minutes (about five on two loaded cores), so `make test` leaves
this out: ``make test-kernel`` sets UNIK_TEST_KERNEL_BUILD=1 and runs it.  The kernel is
cached by its configuration in ~/.cache/unik/kernels/source, so a second run only boots.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from example_support import copy_example
from example_support import missing_vm_tools as missing_tools
from unik_vmimage.initramfs import read_initramfs
from unik_vmimage.source_kernel import missing_tools as kernel_tools_missing
from vm_support import unik

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(4 * 3600),
    pytest.mark.skipif(os.environ.get("UNIK_TEST_KERNEL_BUILD") != "1",
                       reason="builds a Linux kernel from source (minutes): needs UNIK_TEST_KERNEL_BUILD=1, "
                              "which `make test-kernel` sets"),
    pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools())),
    pytest.mark.skipif(bool(kernel_tools_missing()),
                       reason=f"kernel build tools missing: {', '.join(kernel_tools_missing())}"),
]


def test_hello_boots_on_a_kernel_built_for_its_plan(tmp_path: Path) -> None:
    root = copy_example("hello", tmp_path)
    unik("configure", "-t", "virtio", "--kernel", "source", cwd=root)
    started = time.monotonic()
    unik("build", cwd=root, timeout=4 * 3600)
    build_s = time.monotonic() - started
    directory = next((root / "dist").glob("*-virtio"))
    manifest = json.loads((directory / "artifact.json").read_text())["manifest"]
    kernel = manifest["kernel"]
    assert kernel["provider"] == "source" and kernel["version"].endswith("-unik")
    options = kernel["build"]["options"]
    assert options["MODULES"] == "n" and options["PACKET"] == "y" and options["RD_ZSTD"] == "y"
    # hello's only virtio device is the entropy source every image has (the boot seed comes through it):
    # its transports and HW_RANDOM_VIRTIO, no NIC, disk or console
    assert options["HW_RANDOM_VIRTIO"] == "y"
    assert {k for k in options if k.startswith("VIRTIO_") and k != "VIRTIO_MENU"} <= {
        "VIRTIO_PCI", "VIRTIO_PCI_LEGACY", "VIRTIO_MMIO", "VIRTIO_MMIO_CMDLINE_DEVICES"}
    assert not [k for k in options if k in ("VIRTIO_NET", "VIRTIO_BLK", "VIRTIO_CONSOLE")]
    assert kernel["bytes"] < 4_000_000  # Debian's cloud kernel is 14 MB
    names = {e.name for e in read_initramfs(directory / manifest["initramfs"]["file"])}
    assert not [n for n in names if n.startswith("lib/modules/")]
    assert (directory / "vmlinux").read_bytes()[:4] == b"\x7fELF"

    proc = unik("run", "--accel", "tcg", cwd=root)
    lines = proc.stdout.splitlines()
    assert lines[-4:] == ["hello"] * 4, proc.stdout
    assert proc.returncode == 0
    up = re.search(r"unik-init: up at ([0-9.]+) s", proc.stdout)
    assert up, proc.stdout
    print(f"\nsource kernel: {kernel['bytes'] / 1e6:.2f} MB, built in {kernel['build']['build_seconds']} s "
          f"(this build: {build_s:.0f} s), init up at {up.group(1)} s")
