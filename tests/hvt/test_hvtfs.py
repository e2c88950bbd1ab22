"""The archive format of hvt's in-memory filesystem."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from unik_solo5.hvtfs import ENTRY, MAGIC, FsError, FsFile, pack, tree


def _entries(image: bytes) -> dict[str, tuple[int, int, bytes, int]]:
    assert image[:8] == MAGIC
    count = struct.unpack_from("<I", image, 8)[0]
    out = {}
    for i in range(count):
        off, length, mode, parent, data, size, mtime = ENTRY.unpack_from(image, 16 + i * ENTRY.size)
        out[image[off:off + length].decode()] = (mode, parent, image[data:data + size], mtime)
    return out


def test_directories_parents_and_sorting() -> None:
    image = pack({"/lib/b.py": FsFile(b"b = 1\n", 5), "/lib/a/x.py": FsFile(b""), "/app/main.py": FsFile(b"m")})
    entries = _entries(image)
    paths = list(entries)
    assert paths == sorted(paths, key=str.encode)
    assert paths[0] == "/"
    assert entries["/lib/b.py"][2:] == (b"b = 1\n", 5)
    assert entries["/lib/b.py"][0] == 0o100444 and entries["/lib/a"][0] == 0o040555
    assert paths[entries["/lib/a/x.py"][1]] == "/lib/a"
    assert paths[entries["/app"][1]] == "/"


@pytest.mark.parametrize("bad", ["relative/x", "/a/../b", "/a//b"])
def test_bad_paths(bad: str) -> None:
    with pytest.raises(FsError, match="absolute and normalised"):
        pack({bad: FsFile(b"")})


def test_file_and_directory_clash() -> None:
    with pytest.raises(FsError, match="both a file and a directory"):
        pack({"/a": FsFile(b""), "/a/b": FsFile(b"")})


def test_tree(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"\0")
    files = tree(tmp_path, "/lib", skip=("__pycache__",))
    assert list(files) == ["/lib/pkg/m.py"] and files["/lib/pkg/m.py"].data == b"x = 1\n"
