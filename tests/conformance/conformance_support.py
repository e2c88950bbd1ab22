"""Shared pieces of the conformance runs: files written into a directory or a FAT image."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from unik.devices import Block


def write_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` (key -> value) under ``root``; return ``root``."""
    for key, value in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value)
    return root


async def fat_image(path: Path, files: Mapping[str, bytes], size: int = 8 << 20) -> None:
    """A FAT image at ``path`` made by unik's mkfs, holding ``files``."""
    from unik_fat.fs import FatFileSystem
    from unik_fat.mkfs import mkfs
    from unik_fdio.block import FileBlock

    path.write_bytes(b"")
    with path.open("r+b") as f:
        f.truncate(size)
    block: Block = await FileBlock.connect("image", path=str(path))
    try:
        await mkfs(block)
        fs = await FatFileSystem.mount(block)
        for key, value in files.items():
            parent = "/" + "/".join(key.split("/")[:-1])
            if parent != "/":
                await fs.mkdir(parent, parents=True, exist_ok=True)
            file = await fs.open("/" + key, "wb")
            await file.write(value)
            await file.close()
        await fs.disconnect()
    finally:
        await block.disconnect()
