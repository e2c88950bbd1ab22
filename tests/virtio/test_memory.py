"""Too little memory is named as such: the image's floor is checked before booting, and a guest that
stops for want of memory is said to have."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from unik.errors import RunError
from unik_vmimage import memory
from vm_support import RUN_TIMEOUT_S, UNIK

pytestmark = pytest.mark.slow

HELLO = {"bytes": 3_768_813, "uncompressed_bytes": 13_715_940}  # examples/hello's initramfs, measured


def test_the_floor_is_the_kernels_share_plus_the_image() -> None:
    # examples/hello booted at 96 MiB and not at 94 under TCG: the model says 97
    assert memory.floor_mib(HELLO) == 97
    assert memory.floor_mib({"bytes": 1}) is None  # an image from before the sizes were recorded
    assert (memory.qemu_mib("256M"), memory.qemu_mib("1G"), memory.qemu_mib("512"), memory.qemu_mib("65536k")) \
        == (256, 1024, 512, 64)
    with pytest.raises(RunError, match="not a memory size"):
        memory.qemu_mib("lots")


def test_too_little_memory_is_refused_with_what_the_image_needs() -> None:
    memory.check_floor("hello", "97M", 97, HELLO)
    with pytest.raises(RunError) as refused:
        memory.check_floor("hello", "64M", 64, HELLO)
    assert str(refused.value) == ("hello needs at least 97 MiB of memory (the kernel about 80 MiB, its initramfs "
                                  "3.6 MiB, unpacked to 13.1 MiB); --mem 64M gives it 64 MiB: pass --mem 97M or more")


def test_a_stopped_guest_names_memory_when_it_is_the_likely_cause() -> None:
    why = "the guest stopped before printing anything"
    assert memory.explain_stop(why, False, True, "120M", 120, HELLO) == (
        f"{why}. With --mem 120M (120 MiB), close to the 97 MiB this image needs, too little memory is the likely "
        f"cause: try --mem 146M")
    assert memory.explain_stop(why, False, True, "1G", 1024, HELLO) == why  # plenty: not blamed
    assert memory.explain_stop("the guest ran out of memory", True, False, "100M", 100, HELLO) == (
        "the guest ran out of memory: --mem 100M (100 MiB) is too little (this image needs at least 97 MiB); "
        "pass a larger --mem, e.g. --mem 200M")


def test_an_image_below_its_floor_is_refused_before_booting_and_boots_at_it(hello_app: Path) -> None:
    manifest = json.loads((hello_app / "dist" / "hello-virtio" / "artifact.json").read_text())["manifest"]
    floor = memory.floor_mib(manifest["initramfs"])
    assert floor is not None
    proc = subprocess.run([UNIK, "run", "--accel", "tcg", "--mem", "64M"], cwd=hello_app, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 1
    assert f"unik: error: hello needs at least {floor} MiB of memory (the kernel about 80 MiB" in proc.stderr
    assert f"--mem 64M gives it 64 MiB: pass --mem {floor}M or more" in proc.stderr
    assert "booting" not in proc.stderr and "Traceback" not in proc.stderr
    # the floor is enough (the model is measured, not guessed)
    proc = subprocess.run([UNIK, "run", "--accel", "tcg", "--mem", f"{floor}M", "--count", "1"], cwd=hello_app,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "hello"
