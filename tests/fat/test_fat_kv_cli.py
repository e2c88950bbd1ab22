"""The KV stores, the providers and the `unik fat` commands."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from fat_support import HAVE_DOSFSTOOLS, assert_fsck_clean, formatted, run
from unik.cli import main as unik_main
from unik.devices import KVRO, KVRW, EntryKind
from unik.errors import KeyNotFound, NotAValue
from unik.keys import KeyValues
from unik.provider import Request
from unik_fat import plugin
from unik_fat.image import FatImage, MemoryBlock
from unik_fat.kv import FatKVRO, FatKVRW
from unik_fat.providers import FatFileSystemProvider, FatKVROProvider, FatKVRWProvider


def test_kv_rw_semantics() -> None:
    block = MemoryBlock((8 << 20) // 512)

    async def go() -> None:
        kv = await FatKVRW.connect(block, root="/store", format_if_blank=True)
        assert isinstance(kv, KVRW)
        await kv.set("a/b/c.txt", b"hello")
        await kv.set("top", b"1")
        assert await kv.get("a/b/c.txt") == b"hello"
        assert await kv.exists("a") is EntryKind.DICTIONARY
        assert await kv.exists("a/b/c.txt") is EntryKind.VALUE
        assert await kv.exists("nope") is None
        assert await kv.list("") == [("a", EntryKind.DICTIONARY), ("top", EntryKind.VALUE)]
        await kv.set_partial("a/b/c.txt", 7, b"XY")
        assert await kv.get("a/b/c.txt") == b"hello\x00\x00XY"
        assert await kv.get_partial("a/b/c.txt", 1, 3) == b"ell"
        assert await kv.size("a/b/c.txt") == 9
        assert await kv.digest("top") == hashlib.sha256(b"1").digest()
        assert await kv.last_modified("top") > 0
        with pytest.raises(NotAValue):
            await kv.get("a")
        with pytest.raises(KeyNotFound):
            await kv.get("a/zzz")
        await kv.rename("a/b", "moved/b2")
        assert await kv.get("moved/b2/c.txt") == b"hello\x00\x00XY"
        await kv.remove("moved")
        assert await kv.exists("moved") is None
        with pytest.raises(KeyNotFound):
            await kv.remove("moved")
        await kv.disconnect()
        ro = await FatKVRO.connect(MemoryBlock(block.sectors, 512, bytes(block.data), read_only=True), root="/store")
        assert isinstance(ro, KVRO)
        assert await ro.get("top") == b"1"
        assert await ro.list() == [("a", EntryKind.DICTIONARY), ("top", EntryKind.VALUE)]  # "a" is empty now
        await ro.disconnect()

    run(go())


def _request(kind: str, table: dict[str, object]) -> Request:
    return Request(device="kv", kind=kind, target="unix", table=table, table_name="tool.unik.devices.kv",
                   config_file="pyproject.toml", root=Path("."), keys=KeyValues.from_json({}))


def test_providers() -> None:
    names = {p.PLUGIN_NAME: p for p in plugin.unik_register_providers()}
    assert set(names) == {"fat.fs", "fat.kv-rw", "fat.kv-ro"}
    for p in names.values():
        assert p.needs["block"].kind == "block" and p.needs["block"].default_name == "storage"
    assert FatKVROProvider.applies(_request("kv_ro", {}))
    assert not FatKVROProvider.applies(_request("kv_ro", {"source": "htdocs"}))
    opts = FatKVRWProvider.configure(_request("kv_rw", {"root": "/data", "format_if_blank": True})).options
    assert opts == {"root": "/data", "cache_sectors": 4096, "format_if_blank": True, "sync": True,
                    "codepage": "cp437"}
    with pytest.raises(Exception, match="fat_type"):
        FatFileSystemProvider.configure(_request("fs", {"fat_type": 14}))
    # The OEM code page is checked when configuring, and its codec goes into VM images.
    with pytest.raises(Exception, match=r"codepage.*not a single-byte codec"):
        FatKVROProvider.configure(_request("kv_ro", {"codepage": "utf-8"}))
    assert FatFileSystemProvider.configure(_request("fs", {"codepage": "cp850"})).options["codepage"] == "cp850"


def test_unik_fat_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "disk.img"
    host = tmp_path / "Some Notes.txt"
    host.write_bytes(b"notes\n")
    assert unik_main(["fat", "mkfs", str(img), "--size", "8M", "-n", "DATA"]) == 0
    assert unik_main(["fat", "mkdir", "-p", str(img), "/a/b"]) == 0
    assert unik_main(["fat", "cp", str(img), str(host), "::/a/b"]) == 0
    capsys.readouterr()
    assert unik_main(["fat", "ls", "-R", str(img)]) == 0
    assert "Some Notes.txt" in capsys.readouterr().out
    assert unik_main(["fat", "cat", str(img), "/a/b/some notes.txt"]) == 0
    assert unik_main(["fat", "cp", str(img), "::/a/b/Some Notes.txt", str(tmp_path / "out.txt")]) == 0
    assert (tmp_path / "out.txt").read_bytes() == b"notes\n"
    assert unik_main(["fat", "mv", str(img), "/a/b/Some Notes.txt", "/renamed.txt"]) == 0
    assert unik_main(["fat", "fsck", str(img)]) == 0
    assert "clean" in capsys.readouterr().out
    assert unik_main(["fat", "rm", "-r", str(img), "/a"]) == 0
    with FatImage(img) as fs:
        assert fs.listdir("/") == ["renamed.txt"]
    if HAVE_DOSFSTOOLS:
        assert_fsck_clean(img)
    bad = tmp_path / "bad.img"
    bad.write_bytes(bytes(1 << 20))
    assert unik_main(["fat", "fsck", str(bad)]) == 1
    assert unik_main(["fat", "ls", str(bad)]) == 1
    assert "the device is blank" in capsys.readouterr().err


def test_unik_command_lists_fat() -> None:
    r = subprocess.run([sys.executable, "-m", "unik.cli", "fat", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "fsck" in r.stdout, r.stderr


def test_format_if_blank_keeps_existing_filesystems() -> None:
    block = formatted(4 << 20)
    with_file = run(_put(block))
    assert with_file == b"keep"


async def _put(block: MemoryBlock) -> bytes:
    kv = await FatKVRW.connect(block, format_if_blank=True)
    await kv.set("k", b"keep")
    await kv.disconnect()
    kv = await FatKVRW.connect(block, format_if_blank=True)
    try:
        return await kv.get("k")
    finally:
        await kv.disconnect()


def test_vm_images_get_the_codec_of_each_code_page_named() -> None:
    from types import SimpleNamespace

    nodes = [SimpleNamespace(provider="fat.fs", options={"codepage": "cp850"}),
             SimpleNamespace(provider="fat.kv-rw", options={"codepage": "cp437"})]
    contents = plugin.unik_image_contents(SimpleNamespace(nodes=nodes))  # type: ignore[arg-type]
    assert contents is not None and tuple(contents.python_modules) == ("encodings.cp850",)
    assert plugin.unik_image_contents(SimpleNamespace(nodes=nodes[1:])) is None  # type: ignore[arg-type]
