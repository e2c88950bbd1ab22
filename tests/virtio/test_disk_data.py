"""A plan's data disk carried as a partition of the bootable disk: examples/kv keeps its store there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_support import base_command, manifest, read_layout, uefi_args
from example_support import copy_example
from lifecycle_support import fsck_clean, mtype
from unik_vmimage.disk import gpt
from vm_support import RUN_TIMEOUT_S, build_for


@pytest.fixture(scope="module")
def kv_disk(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/kv built with --image disk: its `storage` device's disk.img (zeros, formatted on first boot) inside."""
    root = copy_example("kv", tmp_path_factory.mktemp("kvdisk"))
    with open(root / "disk.img", "wb") as f:
        f.truncate(8 << 20)
    return build_for("virtio", root, "--image", "disk", "--key", "greeting", "--value", "hello")


def test_the_data_disk_is_a_partition_named_after_its_device(kv_disk: Path) -> None:
    images = manifest(kv_disk)["images"]
    _, storage = read_layout(kv_disk / images["disk"]["file"]).partitions
    assert (storage.name, storage.type_guid, storage.size) == ("storage", gpt.LINUX_DATA_TYPE, 8 << 20)
    assert images["partitions"] == {"storage": {"offset": storage.offset, "bytes": storage.size}}


@pytest.mark.slow
def test_kv_boots_from_the_disk_and_keeps_its_store_in_the_partition(kv_disk: Path, tmp_path: Path) -> None:
    info = manifest(kv_disk)
    disk = tmp_path / "kv.raw"
    shutil.copyfile(kv_disk / info["images"]["disk"]["file"], disk)
    proc = subprocess.run([*base_command(info["mem"]), *uefi_args(tmp_path, disk, "raw", snapshot=False)],
                          capture_output=True, timeout=RUN_TIMEOUT_S)
    console = proc.stdout.decode(errors="replace")
    # the application's status 0 through isa-debug-exit: the init writes status + 1, QEMU exits with (1 << 1) | 1
    assert proc.returncode == 3, console[-3000:]
    assert "boot #1" in console and "greeting" in console, console[-3000:]
    offset = info["images"]["partitions"]["storage"]["offset"]
    partition = tmp_path / "storage.img"
    with open(disk, "rb") as src:
        src.seek(offset)
        partition.write_bytes(src.read(8 << 20))
    fsck_clean(partition)  # the guest formatted the zeroed partition and flushed it as it stopped
    assert mtype(partition, "/kv/greeting") == "hello"
