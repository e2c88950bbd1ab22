"""Names read from disk are validated; recursive commands never loop.

The failing input: an image whose long names are ``.``, ``..``, or hold ``/``, ``\\``, NUL
or control characters.  `unik fat cp -r` out of it died with a RecursionError traceback
(a ``..`` long name pointing at the parent made ``sub/..`` the root again), and
`unik fat fsck` called it clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import unik_fat.fs as fs_module
from fat_support import mkfs_fat, needs_dosfstools, run
from unik.cli import main as unik_main
from unik_fat import formats as F
from unik_fat.errors import BadDirectory
from unik_fat.fs import FatFileSystem
from unik_fat.image import ImageBlock

#: Long names no FAT implementation may write, each on an entry of its own.
HOSTILE = ["..", ".", "a/b", "a\\b", "tab\there", "bell\x07"]


def hostile_image(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FAT32 image with /sub/keep.txt and, in /sub, entries named as in HOSTILE.

    The ``..`` and ``.`` entries are directories pointing at the root and at ``/sub`` itself
    (the loop), the others small files; they are written through unik with its own name
    check turned off for the purpose.
    """
    mkfs_fat(path, 40 << 20, "-F", "32")

    async def go() -> None:
        fs = await FatFileSystem.mount(ImageBlock(path))
        await fs.mkdir("/sub")
        await fs.replace("/sub/keep.txt", [b"kept"])
        sub = await fs._lookup("/sub")
        d = await fs._dir(sub)
        monkeypatch.setattr(fs_module, "check_long_name", lambda name: None)
        for name in HOSTILE:
            if name in (".", ".."):
                entry = fs._new_entry(F.ATTR_DIRECTORY)
                entry.cluster = fs.vol.bs.root_cluster if name == ".." else sub.entry.cluster
            else:
                entry = fs._new_entry(F.ATTR_ARCHIVE)
            await fs._add_entry(d, name, entry)
        monkeypatch.undo()
        await fs.disconnect()

    run(go())


@needs_dosfstools
def test_commands_skip_invalid_names_and_fsck_reports_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "hostile.img"
    hostile_image(img, monkeypatch)
    out = tmp_path / "out"
    assert unik_main(["fat", "cp", "-r", str(img), "::/", str(out)]) == 0
    err = capsys.readouterr().err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["sub", "sub/keep.txt"]
    assert (out / "sub/keep.txt").read_bytes() == b"kept"
    for name in HOSTILE:
        assert repr(name) in err, (name, err)
    assert "Traceback" not in err
    assert unik_main(["fat", "ls", "-R", str(img)]) == 0
    listed = capsys.readouterr()
    assert "keep.txt" in listed.out and "warning: skipped" in listed.err
    assert unik_main(["fat", "fsck", str(img)]) == 1
    report = capsys.readouterr().out
    for what in ("a long name '..'", "a long name '.'", "holds '/'", "holds '\\\\'", "control character"):
        assert what in report, (what, report)

    async def lookups() -> None:
        fs = await FatFileSystem.mount(ImageBlock(img, read_only=True))
        with pytest.raises(BadDirectory, match="control character"):  # named, typed, never followed
            await fs.stat("/sub/tab\there")
        assert await fs.listdir("/sub") == ["keep.txt"]
        assert len(await fs.invalid_entries("/sub")) == len(HOSTILE)

    run(lookups())


@needs_dosfstools
def test_a_directory_loop_by_cluster_is_an_error_not_a_recursion(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A valid name whose entry points back at an ancestor: cp -r stops with a message."""
    img = tmp_path / "loop.img"
    mkfs_fat(img, 40 << 20, "-F", "32")

    async def go() -> None:
        fs = await FatFileSystem.mount(ImageBlock(img))
        await fs.mkdir("/a/b", parents=True)
        b = await fs._lookup("/a/b")
        entry = fs._new_entry(F.ATTR_DIRECTORY)
        entry.cluster = (await fs._lookup("/a")).entry.cluster
        await fs._add_entry(await fs._dir(b), "back", entry)
        await fs.disconnect()

    run(go())
    assert unik_main(["fat", "cp", "-r", str(img), "::/a", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "already copied" in err and "Traceback" not in err
    assert unik_main(["fat", "fsck", str(img)]) == 1
    assert "reached twice" in capsys.readouterr().out
