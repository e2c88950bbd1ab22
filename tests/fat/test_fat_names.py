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
    # The 8.3 alias is in the OEM code page (cp437: ß is 0xE1); what it lacks becomes "_" with a tail.
    assert alias("straße.txt", set()) == b"STRA\xe1E  TXT"
    assert alias("\u017f.txt", set()) == b"_~1     TXT"
    assert alias("日本.txt", set()) == b"__~1    TXT"


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


#: Names whose 8.3 form mtools and unik agree on, per code page (str: as each page decodes it).
AGREED = {
    "cp437": {"ärger.txt": "ÄRGER.TXT", "Straße.txt": "STRAßE.TXT", "café au lait.txt": "CAFÉAU~1.TXT",
              "Ñandu.txt": "ÑANDU.TXT"},
    "cp850": {"ärger.txt": "ÄRGER.TXT", "Straße.txt": "STRAßE.TXT", "café au lait.txt": "CAFÉAU~1.TXT",
              "Ñandu.txt": "ÑANDU.TXT", "Øre.txt": "ØRE.TXT", "Õlu.txt": "ÕLU.TXT", "Ünïcode.txt": "ÜNÏCODE.TXT"},
}


def _short_names(path: Path, codepage: str) -> dict[str, str]:
    with FatImage(path, read_only=True, codepage=codepage) as img:
        return {st.name: st.attributes["short_name"] for st in img.scandir("/")}


@needs_dosfstools
@needs_mtools
@pytest.mark.parametrize("codepage", ["cp437", "cp850"])
def test_8_3_names_are_written_in_the_oem_code_page_as_mtools_writes_them(tmp_path: Path, codepage: str) -> None:
    """Issue 21 case 4: the 8.3 names unik writes are the code page's bytes mtools writes for the same names.

    mtools' default code page is 850; an ``mtoolsrc`` with ``DEFAULT_CODEPAGE=437`` gives 437.
    """
    rc = tmp_path / "mtoolsrc"
    rc.write_text(f"DEFAULT_CODEPAGE={codepage[2:]}\n")
    env = {**MTOOLS_ENV, "MTOOLSRC": str(rc), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    names = AGREED[codepage]
    src = tmp_path / "src"
    src.mkdir()
    for name in names:
        (src / name).write_bytes(name.encode())
    theirs, ours = tmp_path / "mtools.img", tmp_path / "unik.img"
    for img_path in (theirs, ours):
        mkfs_fat(img_path, 4 << 20)
    subprocess.run(["mcopy", "-i", str(theirs), *[str(src / n) for n in names], "::/"], check=True, env=env,
                   capture_output=True)
    with FatImage(ours, codepage=codepage) as img:
        for name in names:
            img.write_bytes(f"/{name}", name.encode())
        img.write_bytes("/日本.txt", b"no cp437 or cp850 character")
    assert _short_names(theirs, codepage) == names
    assert _short_names(ours, codepage) == {**names, "日本.txt": "__~1.TXT"}
    assert_fsck_clean(ours)
    # mtools lists unik's 8.3 names decoded as it decodes its own, and the long names beside them.
    listing = subprocess.run(["mdir", "-i", str(ours), "::/"], check=True, env=env, capture_output=True,
                             text=True).stdout
    for name, short in names.items():
        base, _, ext = short.partition(".")
        assert any(line.startswith(f"{base:<8} {ext:<3}") and line.endswith(name) for line in listing.splitlines()), \
            (name, listing)
    for name in names:
        assert mcopy_out(ours, f"/{name}", tmp_path / "out") == name.encode()
    # Read back under the wrong code page, unik's long names still give every name exactly.
    other = "cp850" if codepage == "cp437" else "cp437"
    assert set(_short_names(ours, other)) == {*names, "日本.txt"}


def test_the_alias_follows_the_mounted_code_page() -> None:
    """Ø is 0x9D in cp850 and absent from cp437; Õ is 0xE5 in cp850, stored as 0x05 (fatgen103's KANJI)."""
    from fat_support import formatted

    async def go(codepage: str) -> dict[str, tuple[bytes, str]]:
        fs = await FatFileSystem.mount(formatted(1 << 20), codepage=codepage)
        for name in ("Øre.txt", "Õlu.txt"):
            await (await fs.open(f"/{name}", "wb")).close()
        root = await fs._dir(fs._root_node)
        return {st.name: (root.entries[fold(st.name)].entry.name, st.attributes["short_name"])
                for st in await fs.scandir("/")}

    assert run(go("cp850")) == {"Øre.txt": (b"\x9dRE     TXT", "ØRE.TXT"), "Õlu.txt": (b"\x05LU     TXT", "ÕLU.TXT")}
    assert run(go("cp437")) == {"Øre.txt": (b"_RE~1   TXT", "_RE~1.TXT"), "Õlu.txt": (b"_LU~1   TXT", "_LU~1.TXT")}
