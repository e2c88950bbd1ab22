"""Names: one-to-one case folding, names stored unaltered, OEM code pages for 8.3 names.

The failing inputs: an image holding both ``straße.txt`` and ``STRASSE.TXT`` (and
``ﬁle.txt``/``FILE.TXT``, ``\u0131.txt``/``I.TXT``) where ``unik fat cat straße.txt`` returned
the other file's bytes (``str.upper`` folds ß into "SS"); ``straße.txt`` written as
``strasse.txt`` (8.3 only); mtools' ``ÄRGER.TXT`` listed as ``\\x8eRGER.TXT``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fat_support import (
    MTOOLS_ENV,
    assert_fsck_clean,
    mcopy_in,
    mcopy_out,
    mdir_names,
    mkfs_fat,
    needs_dosfstools,
    needs_mtools,
    run,
)
from unik.cli import main as unik_main
from unik_fat.errors import FatError
from unik_fat.fs import FatFileSystem
from unik_fat.image import FatImage
from unik_fat.names import alias, fold, plain_short

#: Pairs that Unicode's full case mapping (str.upper) folds together and FAT does not.
PAIRS = [("straße.txt", "STRASSE.TXT"), ("ﬁle.txt", "FILE.TXT"), ("\u0131.txt", "I.TXT"), ("\u017f.txt", "S.TXT"),
         ("µ.txt", "\u039c.TXT")]


def test_fold_is_one_to_one_per_code_unit() -> None:
    for a, b in PAIRS:
        assert a.upper() == b.upper() or a.upper().casefold() == b.casefold()  # what used to make them one
        assert fold(a) != fold(b), (a, b)
        assert len(fold(a)) == len(a)
    # Simple one-to-one mappings still fold: Latin, Greek (both sigmas), Cyrillic, full-width.
    for a, b in [("ärger.txt", "ÄRGER.TXT"), ("σς.txt", "ΣΣ.TXT"), ("привет", "ПРИВЕТ"),
                 ("\uff41\uff42", "\uff21\uff22")]:
        assert fold(a) == fold(b), (a, b)
    assert fold("\U00010428") != fold("\U00010400")  # outside the BMP: compared exactly


def test_non_ascii_names_always_keep_a_long_name() -> None:
    for name in ("straße.txt", "\u017f.txt", "\u0131.txt", "ärger.txt", "Ä.TXT"):
        assert plain_short(name) is None, name
    assert alias("straße.txt", set()) == b"STRA_E~1TXT"
    assert alias("\u017f.txt", set()) == b"_~1     TXT"


def _write_pairs(path: Path) -> dict[str, bytes]:
    contents = {}
    with FatImage(path) as img:
        for i, (a, b) in enumerate(PAIRS):
            for name, tag in ((a, b"lower"), (b, b"upper")):
                contents[name] = tag + bytes([i]) * (100 + i)
                img.write_bytes(f"/{name}", contents[name])
    return contents


@needs_dosfstools
def test_files_that_fold_apart_under_fat_stay_apart(tmp_path: Path) -> None:
    img_path = tmp_path / "pairs.img"
    mkfs_fat(img_path, 4 << 20)
    contents = _write_pairs(img_path)
    with FatImage(img_path) as img:
        assert sorted(img.listdir("/")) == sorted(contents)  # stored as given, nothing altered
        for name, data in contents.items():
            assert img.read_bytes(f"/{name}") == data, name
        assert img.read_bytes("/strasse.txt") == contents["STRASSE.TXT"]
        assert img.check() == []
    assert_fsck_clean(img_path)


@needs_dosfstools
@needs_mtools
def test_mtools_reads_them_apart_and_unik_reads_mtools_pairs(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
                                                          ) -> None:
    img_path = tmp_path / "pairs.img"
    mkfs_fat(img_path, 4 << 20)
    contents = _write_pairs(img_path)
    assert sorted(mdir_names(img_path)) == sorted(contents)
    # mtools folds with towupper (\u0131 and \u017f onto I and S): ask it only for the names it keeps apart.
    for name in ("straße.txt", "STRASSE.TXT", "ﬁle.txt", "FILE.TXT"):
        assert mcopy_out(img_path, f"/{name}", tmp_path / "out") == contents[name], name
    # The reverse: mtools writes straße.txt and STRASSE.TXT; `unik fat cat` returns each one's bytes.
    other = tmp_path / "mtools.img"
    mkfs_fat(other, 4 << 20)
    for name, data in (("straße.txt", b"sharp s"), ("STRASSE.TXT", b"double s")):
        (tmp_path / name).write_bytes(data)
        mcopy_in(other, tmp_path / name, f"/{name}")
    for name, data in (("straße.txt", b"sharp s"), ("STRASSE.TXT", b"double s"), ("strasse.txt", b"double s")):
        capfdbinary.readouterr()
        assert unik_main(["fat", "cat", str(other), name]) == 0
        assert capfdbinary.readouterr().out == data, name


@needs_dosfstools
@needs_mtools
def test_short_names_use_the_oem_code_page(tmp_path: Path) -> None:
    """mtools stores ``ÄRGER.TXT`` as an 8.3 name with cp437's 0x8E; unik reads and opens it by name."""
    img_path = tmp_path / "oem.img"
    mkfs_fat(img_path, 4 << 20)
    src = tmp_path / "ÄRGER.TXT"
    src.write_bytes(b"anger")
    subprocess.run(["mcopy", "-i", str(img_path), str(src), "::/ÄRGER.TXT"], check=True, env=MTOOLS_ENV,
                   capture_output=True)
    with FatImage(img_path) as img:
        (st,) = img.scandir("/")
        assert st.name == "ÄRGER.TXT" and st.attributes["short_name"] == "ÄRGER.TXT"
        assert img.read_bytes("/ÄRGER.TXT") == img.read_bytes("/ärger.txt") == b"anger"
        # Another code page is a key away: byte 0x9D is ¥ in cp437 and Ø in cp850.
        img.write_bytes("/X.TXT", b"x")
    raw = bytearray(img_path.read_bytes())
    at = raw.index(b"X       TXT")
    raw[at] = 0x9D
    img_path.write_bytes(bytes(raw))
    with FatImage(img_path, read_only=True) as img:
        assert "¥.TXT" in img.listdir("/")
    with FatImage(img_path, read_only=True, codepage="cp850") as img:
        assert "Ø.TXT" in img.listdir("/") and img.read_bytes("/ø.txt") == b"x"
    with pytest.raises(FatError, match=r"cp437 .*cp850"):
        FatImage(img_path, codepage="utf-8")


def test_mount_refuses_an_unknown_code_page() -> None:
    from fat_support import formatted

    with pytest.raises(FatError, match="not a single-byte codec"):
        run(FatFileSystem.mount(formatted(1 << 20), codepage="no-such-page"))
