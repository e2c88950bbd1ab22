"""A data disk carried as a GPT partition (unik build --image disk): the guest finds it by its name."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import require
from unik.errors import DeviceUnavailable
from unik_vmguest.block import VirtioBlock, find_disk, find_partition
from unik_vmimage.disk import gpt

MIB = 1 << 20


def test_a_partition_is_found_by_its_name_when_no_disk_has_the_serial(tmp_path: Path) -> None:
    sys_block, sys_class = tmp_path / "block", tmp_path / "class"
    (sys_block / "vda").mkdir(parents=True)
    (sys_block / "vda" / "serial").write_text("\n")  # the boot disk: no serial
    for dev, uevent in (("vda", "DEVTYPE=disk\n"), ("vda1", "DEVTYPE=partition\nPARTN=1\nPARTNAME=EFI system\n"),
                        ("vda2", "DEVTYPE=partition\nPARTN=2\nPARTNAME=storage\n")):
        (sys_class / dev).mkdir(parents=True)
        (sys_class / dev / "uevent").write_text("MAJOR=254\n" + uevent)
    assert find_partition("storage", sys_class) == "vda2"
    assert find_disk("storage", sys_block, sys_class) == "vda2"
    with pytest.raises(DeviceUnavailable, match=r"no virtio disk with serial 'logs'.* and no partition named so"):
        find_disk("logs", sys_block, sys_class)


@pytest.fixture
def partitioned_loop(tmp_path: Path) -> Iterator[tuple[str, gpt.Partition, Path]]:
    """A loop device over a GPT disk whose second partition is named uniquely: (name, partition, image)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (losetup) for a kernel block device with partitions")
    require("losetup", "partx")
    name = f"unik-data-{os.getpid()}"
    layout = gpt.plan_layout([gpt.Wanted("first", MIB, gpt.LINUX_DATA_TYPE, uuid.uuid4()),
                              gpt.Wanted(name, 2 * MIB, gpt.LINUX_DATA_TYPE, uuid.uuid4())], uuid.uuid4())
    image = tmp_path / "disk.raw"
    fd = os.open(image, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        gpt.write_gpt(fd, layout)
    finally:
        os.close(fd)
    made = subprocess.run(["losetup", "--find", "--show", "--partscan", str(image)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot attach a loop device: {made.stderr.strip()}")
    device = made.stdout.strip()
    try:
        part = Path(f"/sys/class/block/{os.path.basename(device)}p2")
        for _ in range(20):  # the kernel scans the table as the device is attached
            if part.exists():
                break
            time.sleep(0.1)
        else:  # no partition scan here (a container's loop devices): add them from the table read by partx
            subprocess.run(["partx", "--add", device], capture_output=True, check=True)
        yield name, layout.partitions[1], image
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)


def _loops_of(image: Path) -> set[str]:
    listed = subprocess.run(["losetup", "--noheadings", "-O", "NAME", "-j", str(image)], capture_output=True,
                            text=True, check=True).stdout.split()
    return {os.path.basename(n) for n in listed}


def test_a_partition_opens_as_a_disk_of_its_own_range(
        partitioned_loop: tuple[str, gpt.Partition, Path]) -> None:
    name, part, image = partitioned_loop
    dev = next(p.name for p in Path("/sys/class/block").iterdir()
               if p.name.startswith("loop") and p.name.endswith("p2") and (p / "partition").exists()
               and os.path.realpath(p).rsplit("/", 2)[-2] in _loops_of(image))
    if "PARTNAME=" in (Path("/sys/class/block") / dev / "uevent").read_text():  # the kernel's own scan names it
        assert find_disk(name) == dev
    disk = VirtioBlock.open_disk(name, dev, False, None)  # a partition: the sector size from its disk's queue

    async def go() -> bytes:
        await disk.write(1, b"\xa5" * 512)
        await disk.flush()
        data = await disk.read(1, 1)
        await disk.disconnect()
        return data

    assert disk.sectors * disk.sector_size == part.size
    assert asyncio.run(go()) == b"\xa5" * 512
    with open(image, "rb") as f:  # written inside the partition, not at the disk's start
        f.seek(part.offset + 512)
        assert f.read(512) == b"\xa5" * 512
