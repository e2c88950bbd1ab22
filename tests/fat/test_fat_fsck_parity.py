"""`unik fat fsck` reports at least what `fsck.fat -n` reports: a differential test over mutated images.

Each mutation breaks one thing (names, media entries, FAT copies, chains, FSInfo,
directory and file sizes), on FAT16 and FAT32 images that mkfs.fat made and unik filled;
random byte flips in the metadata follow.  Whenever fsck.fat finds a problem, unik must
find one too (or refuse to mount the image with a typed error), and for the targeted
mutations its report must name the kind of problem.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from fat_support import fsck, mkfs_fat, needs_dosfstools
from unik_fat.errors import CorruptFilesystem
from unik_fat.formats import FAT32, BootSector, fat_bytes, get_entry, set_entry
from unik_fat.image import FatImage

pytestmark = needs_dosfstools

#: Random metadata flips per image (raise FAT_PARITY_FLIPS for a longer run).
FLIPS = int(os.environ.get("FAT_PARITY_FLIPS", "60"))


def build(tmp: Path, fat: int) -> bytes:
    path = tmp / f"base{fat}.img"
    mkfs_fat(path, (40 if fat == 32 else 16) << 20, "-F", str(fat), "-s", "1")
    with FatImage(path) as img:
        img.mkdir("/Some Dir")
        img.write_bytes("/Some Dir/long name file.txt", bytes(range(256)) * 12)
        img.write_bytes("/SHORT.TXT", b"y" * 10)
        img.mkdir("/Some Dir/sub")
        img.write_bytes("/Some Dir/sub/Another Long One.bin", b"z" * 700)
    return path.read_bytes()


class Image:
    """Offsets of an image's structures, for mutations."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.bs = BootSector.parse(data[:512])
        self.bps = self.bs.bytes_per_sector

    def fat_offsets(self) -> list[int]:
        return [(self.bs.first_fat_sector + k * self.bs.fat_size) * self.bps for k in range(self.bs.num_fats)]

    def fat(self, k: int = 0) -> bytearray:
        at = self.fat_offsets()[k]
        return self.data[at:at + fat_bytes(self.bs.fat_type, self.bs.max_cluster + 1)]

    def set_fat(self, n: int, value: int, copies: tuple[int, ...] | None = None) -> None:
        for k in copies if copies is not None else range(self.bs.num_fats):
            table = self.fat(k)
            set_entry(table, self.bs.fat_type, n, value)
            at = self.fat_offsets()[k]
            self.data[at:at + len(table)] = table

    def get_fat(self, n: int) -> int:
        return get_entry(self.fat(), self.bs.fat_type, n)

    def entry(self, short: bytes) -> int:
        """Offset of the short entry named ``short``."""
        at = self.data.find(short)
        assert at >= 0 and at % 32 == 0, short
        return at

    def cluster_of(self, short: bytes) -> int:
        at = self.entry(short)
        hi, lo = struct.unpack_from("<H", self.data, at + 20)[0], struct.unpack_from("<H", self.data, at + 26)[0]
        return int((hi << 16 | lo) if self.bs.fat_type == FAT32 else lo)


def _lfn_of(img: Image, short: bytes) -> int:
    return img.entry(short) - 32  # the long entry right before (its last part holds the name's start)


def m_lfn_char(ch: str) -> Callable[[Image], None]:
    def mutate(img: Image) -> None:
        at = _lfn_of(img, b"LONGNA~1TXT")
        struct.pack_into("<H", img.data, at + 1 + 2 * 2, ord(ch))  # the third character
    return mutate


def m_lfn_after_nul(img: Image) -> None:
    at = img.entry(b"ANOTHE~1BIN") - 32 * 2  # the first long entry on disk: the name's end and padding
    units = [struct.unpack_from("<H", img.data, at + o)[0] for o in (*range(1, 11, 2), *range(14, 26, 2), 28, 30)]
    end = units.index(0)
    offs = [*range(1, 11, 2), *range(14, 26, 2), 28, 30]
    struct.pack_into("<H", img.data, at + offs[end + 1], ord("Q"))


def m_lfn_dotdot(img: Image) -> None:
    at = _lfn_of(img, b"SOMEDI~1   ")
    units = [ord("."), ord("."), 0] + [0xFFFF] * 10
    offs = [*range(1, 11, 2), *range(14, 26, 2), 28, 30]
    for o, u in zip(offs, units, strict=True):
        struct.pack_into("<H", img.data, at + o, u)
    img.data[at] = 0x41  # first and last of a one-entry set
    img.data[img.entry(b"SOMEDI~1   ") - 64] = 0xE5  # its old first part is gone


def m_short_byte(b: int, where: int = 2) -> Callable[[Image], None]:
    def mutate(img: Image) -> None:
        img.data[img.entry(b"SHORT   TXT") + where] = b
    return mutate


def m_media(n: int) -> Callable[[Image], None]:
    def mutate(img: Image) -> None:
        img.set_fat(n, 0)
    return mutate


def m_fat_copy(img: Image) -> None:
    c = img.cluster_of(b"SHORT   TXT")
    img.set_fat(c, 0, copies=(1,))


def m_chain_free(img: Image) -> None:
    img.set_fat(img.cluster_of(b"LONGNA~1TXT"), 0)


def m_chain_loop(img: Image) -> None:
    c = img.cluster_of(b"LONGNA~1TXT")
    img.set_fat(img.get_fat(c), c)


def m_cross_link(img: Image) -> None:
    last, b = img.cluster_of(b"LONGNA~1TXT"), img.cluster_of(b"SHORT   TXT")
    while img.get_fat(last) < (0x0FFFFFF8 if img.bs.fat_type == FAT32 else 0xFFF8):
        last = img.get_fat(last)
    img.set_fat(last, b)


def m_lost(img: Image) -> None:
    img.set_fat(img.bs.max_cluster - 3, 0x0FFFFFFF if img.bs.fat_type == FAT32 else 0xFFFF)


def m_fsinfo_free(img: Image) -> None:
    at = img.bs.fs_info_sector * img.bps
    struct.pack_into("<I", img.data, at + 488, 5)


def m_fsinfo_next(img: Image) -> None:
    at = img.bs.fs_info_sector * img.bps
    struct.pack_into("<I", img.data, at + 492, img.bs.max_cluster + 100)


def m_dir_size(img: Image) -> None:
    struct.pack_into("<I", img.data, img.entry(b"SUB        ") + 28, 4096)


def m_file_too_big(img: Image) -> None:
    struct.pack_into("<I", img.data, img.entry(b"SHORT   TXT") + 28, 1 << 20)


def m_file_too_small(img: Image) -> None:
    struct.pack_into("<I", img.data, img.entry(b"LONGNA~1TXT") + 28, 1)


#: (name, mutation, FAT types, a word unik's report must contain)
MUTATIONS = [
    ("lfn-slash", m_lfn_char("/"), (16, 32), "'/'"),
    ("lfn-backslash", m_lfn_char("\\"), (16, 32), "'\\\\'"),
    ("lfn-control", m_lfn_char("\x01"), (16, 32), "control"),
    ("lfn-after-nul", m_lfn_after_nul, (16, 32), "after its NUL"),
    ("lfn-dotdot", m_lfn_dotdot, (16, 32), "'..'"),
    ("short-slash", m_short_byte(ord("/")), (16, 32), "'/'"),
    ("short-backslash", m_short_byte(ord("\\")), (16, 32), "'\\\\'"),
    ("short-nul", m_short_byte(0), (16, 32), "after a NUL"),
    ("short-control", m_short_byte(0x01), (16, 32), "control"),
    ("short-leading-space", m_short_byte(0x20, 0), (16, 32), "space"),
    ("media-0", m_media(0), (16, 32), "entry 0"),
    ("media-1", m_media(1), (16, 32), "entry 1"),
    ("fat-copies", m_fat_copy, (16, 32), "differs"),
    ("chain-free", m_chain_free, (16, 32), "free cluster"),
    ("chain-loop", m_chain_loop, (16, 32), "loops"),
    ("cross-link", m_cross_link, (16, 32), "share"),
    ("lost-cluster", m_lost, (16, 32), "belong to no file"),
    ("fsinfo-free", m_fsinfo_free, (32,), "FSInfo"),
    ("fsinfo-next", m_fsinfo_next, (32,), "FSInfo"),
    ("dir-size", m_dir_size, (16, 32), "directory with a size"),
    ("file-too-big", m_file_too_big, (16, 32), "chain holds"),
    ("file-too-small", m_file_too_small, (16, 32), "more than it needs"),
]


def unik_report(path: Path) -> list[str]:
    """unik's problems with the image (a refusal to mount counts as one)."""
    try:
        with FatImage(path, read_only=True) as img:
            return img.check()
    except CorruptFilesystem as exc:
        return [f"refused to mount: {exc}"]


def fsck_report(path: Path) -> list[str]:
    """What fsck.fat -n says beyond its banner and summary (empty: clean)."""
    r = fsck(path, "-n")
    lines = [ln for ln in (r.stdout + r.stderr).splitlines()
             if ln.strip() and not ln.startswith("fsck.fat ") and not ln.startswith(f"{path}: ")]
    return lines if (lines or r.returncode) else []


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[int, bytes]:
    tmp = tmp_path_factory.mktemp("parity")
    return {fat: build(tmp, fat) for fat in (16, 32)}


@pytest.mark.parametrize(("fat", "mutate", "word"), [
    pytest.param(fat, mutate, word, id=f"{name}-{fat}") for name, mutate, types, word in MUTATIONS for fat in types])
def test_targeted_mutation(bases: dict[int, bytes], tmp_path: Path, fat: int, mutate: Callable[[Image], None],
                           word: str) -> None:
    img = Image(bases[fat])
    mutate(img)
    path = tmp_path / "m.img"
    path.write_bytes(bytes(img.data))
    theirs = fsck_report(path)
    ours = unik_report(path)
    if theirs:
        assert ours, f"fsck.fat -n finds {theirs} where unik finds nothing"
    assert any(word in p for p in ours), (word, ours, theirs)


@pytest.mark.parametrize("fat", [16, 32])
def test_random_metadata_flips(bases: dict[int, bytes], tmp_path: Path, fat: int) -> None:
    """Random bytes of the FAT, the root directory and the first data clusters, changed one at a time."""
    rng = random.Random(fat)
    img = Image(bases[fat])
    bs = img.bs
    regions = [(bs.first_fat_sector * img.bps, (bs.first_fat_sector + 2) * img.bps),
               (bs.root_dir_sector * img.bps if fat != 32 else bs.cluster_sector(bs.root_cluster) * img.bps,
                (bs.root_dir_sector if fat != 32 else bs.cluster_sector(bs.root_cluster)) * img.bps + 512),
               (bs.first_data_sector * img.bps, bs.first_data_sector * img.bps + 16 * img.bps)]
    path = tmp_path / "f.img"
    disagreements = []
    for _ in range(FLIPS):
        start, end = rng.choice(regions)
        data = bytearray(bases[fat])
        at = rng.randrange(start, end)
        data[at] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        theirs = fsck_report(path)
        if theirs and not unik_report(path):
            disagreements.append((at, theirs))
    assert not disagreements, disagreements
