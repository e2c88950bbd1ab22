"""On-disk formats and name rules."""

from __future__ import annotations

import pytest
from fat_support import fat_settings
from hypothesis import given
from hypothesis import strategies as st
from unik_fat import formats as F
from unik_fat.errors import InvalidName
from unik_fat.names import alias, basis_name, check_long_name, plain_short


@pytest.mark.parametrize("fat_type", [12, 16, 32])
def test_fat_entries_roundtrip(fat_type: int) -> None:
    fat = bytearray(F.fat_bytes(fat_type, 64) + 2)
    if fat_type == 32:
        fat[4 * 7 + 3] = 0xA0  # reserved bits must survive a set
    values = {n: (n * 2654435761) & F.EOC_MARK[fat_type] for n in range(64)}
    for n, v in values.items():
        F.set_entry(fat, fat_type, n, v)
    assert {n: F.get_entry(fat, fat_type, n) for n in range(64)} == values
    if fat_type == 32:
        assert fat[4 * 7 + 3] & 0xF0 == 0xA0


def test_boot_sector_roundtrip() -> None:
    bs = F.BootSector(bytes_per_sector=512, sectors_per_cluster=4, reserved_sectors=4, num_fats=2,
                      root_entries=512, total_sectors=40960, fat_size=40, volume_id=0x1234, fs_type_label=b"FAT16   ")
    again = F.BootSector.parse(bs.emit())
    assert again.fat_type == 16 and again.cluster_count == bs.cluster_count and again.volume_id == 0x1234
    assert again.first_data_sector == 4 + 80 + 32


def test_fsinfo_layout() -> None:
    raw = F.FSInfo(1234, 99).emit(4096)
    assert raw[0:4] == b"RRaA" and raw[484:488] == b"rrAa" and raw[508:512] == b"\x00\x00\x55\xaa"
    assert F.FSInfo.parse(raw) == F.FSInfo(1234, 99)
    assert F.FSInfo.parse(bytes(512)) is None


def test_lfn_checksum_known_value() -> None:
    # fatgen103 ChkSum over "FOO     BAR", computed by hand with the rotate-add rule
    s = 0
    for b in b"FOO     BAR":
        s = ((s >> 1) | ((s & 1) << 7)) + b & 0xFF
    assert F.lfn_checksum(b"FOO     BAR") == s


@fat_settings()
@given(st.integers(1980, 2107), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
       st.integers(0, 59), st.integers(0, 29))
def test_datetime_roundtrip(y: int, mo: int, d: int, h: int, mi: int, s2: int) -> None:
    date, tm = F.encode_datetime(y, mo, d, h, mi, s2 * 2)
    assert F.decode_datetime(date, tm) == (y, mo, d, h, mi, s2 * 2)


@pytest.mark.parametrize(("name", "short", "nt"), [
    ("README.TXT", b"README  TXT", 0),
    ("readme.txt", b"README  TXT", 0x18),
    ("readme.TXT", b"README  TXT", 0x08),
    ("README.txt", b"README  TXT", 0x10),
    ("A", b"A          ", 0),
])
def test_plain_short_names(name: str, short: bytes, nt: int) -> None:
    form = plain_short(name)
    assert form is not None and (form.short, form.nt_res) == (short, nt)


@pytest.mark.parametrize("name", ["ReadMe.txt", "toolongname.txt", "a.b.c", "with space", ".hidden", "x.abcd", "a+b"])
def test_names_that_need_a_long_entry(name: str) -> None:
    assert plain_short(name) is None


@pytest.mark.parametrize(("name", "taken", "expect"), [
    ("The quick brown fox.txt", set(), b"THEQUI~1TXT"),
    ("The quick brown fox.txt", {b"THEQUI~1TXT"}, b"THEQUI~2TXT"),
    ("ReadMe.txt", set(), b"README  TXT"),  # fits 8.3: no tail
    ("ReadMe.txt", {b"README  TXT"}, b"README~1TXT"),
    (".bashrc", set(), b"BASHRC~1   "),  # leading period stripped: lossy
    ("a+b.c", set(), b"A_B~1   C  "),
    ("archive.tar.gz", set(), b"ARCHIV~1GZ "),
    ("ünï.txt", set(), b"\x9aN_~1   TXT"),  # cp437 (the default): Ü is 0x9A, it has no Ï
])
def test_alias_generation(name: str, taken: set[bytes], expect: bytes) -> None:
    assert alias(name, taken) == expect


def test_alias_tail_grows() -> None:
    taken = {b"LONGFI~" + str(i).encode() + b"TXT" for i in range(1, 10)}
    assert alias("Long File Name.txt", taken) == b"LONGF~10TXT"
    assert basis_name("  spaced  name .txt") == ("SPACEDNA", "TXT", True)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a*b", 'q"', "end.", "end ", "x" * 256, "ctl\x01"])
def test_invalid_long_names(name: str) -> None:
    with pytest.raises(InvalidName):
        check_long_name(name)


def test_alias_tails_memo_skips_used_tails_and_wraps() -> None:
    tails: dict[str, int] = {}
    taken: set[bytes] = set()
    for _ in range(30):
        taken.add(alias("Long File Name.txt", taken, tails))
    assert b"LONGF~30TXT" in taken and tails["LONGFILE.TXT"] == 30
    taken.discard(b"LONGFI~3TXT")
    tails["LONGFILE.TXT"] = 999_999  # nothing above: wraps around to the freed ~3
    assert alias("Long File Name.txt", taken, tails) == b"LONGFI~3TXT"
