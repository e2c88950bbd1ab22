"""On-disk formats of FAT12/16/32: parse and emit views, no filesystem state.

Every rule cites Microsoft's *FAT: General Overview of On-Disk Format* (fatgen103,
version 1.03), by section.  The filesystem logic lives in :mod:`unik_fat.fs`; this
module only turns bytes into values and values into bytes, and checks that the values
are possible (a bad BPB raises :class:`~unik_fat.errors.BadBootSector`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from .errors import BadBootSector

# --- boot sector and BPB (fatgen103 "Boot Sector and BPB") -----------------------------

#: Offsets 0..35 are common to all FAT types: BS_jmpBoot .. BPB_TotSec32.
_BPB = struct.Struct("<3s8sHBHBHHBHHHII")
#: FAT12/16 extended BPB at offset 36: BS_DrvNum .. BS_FilSysType.
_EXT16 = struct.Struct("<BBBI11s8s")
#: FAT32 extended BPB at offset 36: BPB_FATSz32 .. BS_FilSysType.
_EXT32 = struct.Struct("<IHHIHH12sBBBI11s8s")

FAT12, FAT16, FAT32 = 12, 16, 32

#: fatgen103 "FAT Type Determination": fewer than 4085 clusters is FAT12, fewer than
#: 65525 is FAT16, otherwise FAT32.  These limits are exact; do not "fix" them.
FAT12_MAX_CLUSTERS = 4084
FAT16_MAX_CLUSTERS = 65524
#: FAT32 entries are 28 bits; the top 4 are reserved (fatgen103 "FAT32 FAT entries").
FAT32_MAX_CLUSTERS = 0x0FFFFFF5 - 2

VALID_SECTOR_SIZES = (512, 1024, 2048, 4096)


@dataclass(frozen=True)
class BootSector:
    """The boot sector's BPB with the values derived from it (fatgen103 §3)."""

    oem_name: bytes = b"MSWIN4.1"
    bytes_per_sector: int = 512
    sectors_per_cluster: int = 1
    reserved_sectors: int = 1
    num_fats: int = 2
    root_entries: int = 512
    total_sectors: int = 0
    media: int = 0xF8
    fat_size: int = 0
    sectors_per_track: int = 32
    heads: int = 64
    hidden_sectors: int = 0
    # FAT32 only
    ext_flags: int = 0
    fs_version: int = 0
    root_cluster: int = 0
    fs_info_sector: int = 0
    backup_boot_sector: int = 0
    # extended boot record
    drive_number: int = 0x80
    volume_id: int = 0
    volume_label: bytes = b"NO NAME    "
    fs_type_label: bytes = b"FAT16   "
    #: Set by :meth:`parse`: the BPB said FAT32 (BPB_FATSz16 == 0).
    is_fat32_layout: bool = False

    # --- derived values (fatgen103 "FAT Data Structure") --------------------------------

    @property
    def root_dir_sectors(self) -> int:
        """RootDirSectors: the fixed root directory's size; 0 on FAT32."""
        return (self.root_entries * 32 + self.bytes_per_sector - 1) // self.bytes_per_sector

    @property
    def first_fat_sector(self) -> int:
        """The first FAT starts right after the reserved region."""
        return self.reserved_sectors

    @property
    def root_dir_sector(self) -> int:
        """First sector of the FAT12/16 root directory: after the FATs."""
        return self.reserved_sectors + self.num_fats * self.fat_size

    @property
    def first_data_sector(self) -> int:
        """FirstDataSector = BPB_RsvdSecCnt + BPB_NumFATs * FATSz + RootDirSectors."""
        return self.root_dir_sector + self.root_dir_sectors

    @property
    def data_sectors(self) -> int:
        """DataSec = TotSec - FirstDataSector."""
        return self.total_sectors - self.first_data_sector

    @property
    def cluster_count(self) -> int:
        """CountofClusters = DataSec / BPB_SecPerClus (rounded down)."""
        return self.data_sectors // self.sectors_per_cluster

    @property
    def fat_type(self) -> int:
        """12, 16 or 32 (fatgen103 "FAT Type Determination": from the count of clusters).

        One exception, as Linux and dosfstools make it: a BPB with the FAT32 layout
        (``BPB_FATSz16 == 0``) is FAT32 whatever its cluster count, since
        ``mkfs.fat -F 32`` writes such volumes on small devices.
        """
        if self.is_fat32_layout:
            return FAT32
        n = self.cluster_count
        if n <= FAT12_MAX_CLUSTERS:
            return FAT12
        if n <= FAT16_MAX_CLUSTERS:
            return FAT16
        return FAT32

    @property
    def cluster_size(self) -> int:
        """Bytes per cluster."""
        return self.sectors_per_cluster * self.bytes_per_sector

    @property
    def max_cluster(self) -> int:
        """The highest valid cluster number: clusters are numbered 2..CountofClusters+1."""
        return self.cluster_count + 1

    def cluster_sector(self, cluster: int) -> int:
        """FirstSectorofCluster = ((N - 2) * BPB_SecPerClus) + FirstDataSector."""
        return (cluster - 2) * self.sectors_per_cluster + self.first_data_sector

    # --- parse and emit -----------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> BootSector:
        """Parse and validate sector 0; raises :class:`BadBootSector`."""
        if len(data) < 512:
            raise BadBootSector(f"boot sector is {len(data)} bytes, need 512")
        (jmp, oem, bps, spc, rsvd, nfats, root_ent, tot16, media, fatsz16, spt, heads,
         hidden, tot32) = _BPB.unpack_from(data, 0)
        # "BS_jmpBoot": EB xx 90 or E9 xx xx.
        if not (jmp[0] == 0xEB and jmp[2] == 0x90) and jmp[0] != 0xE9:
            raise BadBootSector(f"no jump instruction at offset 0 ({jmp.hex()}): not a FAT boot sector")
        # "BPB_BytsPerSec": 512, 1024, 2048 or 4096 only.
        if bps not in VALID_SECTOR_SIZES:
            raise BadBootSector(f"BPB_BytsPerSec is {bps}, must be 512, 1024, 2048 or 4096")
        # "Signature word" 0x55 0xAA at offset 510 (of every sector size).
        if data[510:512] != b"\x55\xaa":
            raise BadBootSector("missing 0x55AA signature at offset 510")
        # "BPB_SecPerClus": a power of 2 from 1 to 128.
        if spc == 0 or spc & (spc - 1) or spc > 128:
            raise BadBootSector(f"BPB_SecPerClus is {spc}, must be a power of 2 up to 128")
        # "BPB_RsvdSecCnt": never 0 (the boot sector itself is reserved).
        if rsvd == 0:
            raise BadBootSector("BPB_RsvdSecCnt is 0")
        # "BPB_NumFATs": 2 is recommended; 1 is allowed.
        if nfats == 0:
            raise BadBootSector("BPB_NumFATs is 0")
        # "BPB_TotSec16": if 0, BPB_TotSec32 holds the count.
        total = tot16 if tot16 else tot32
        fat32 = fatsz16 == 0
        fields = dict(
            oem_name=oem, bytes_per_sector=bps, sectors_per_cluster=spc, reserved_sectors=rsvd,
            num_fats=nfats, root_entries=root_ent, total_sectors=total, media=media,
            sectors_per_track=spt, heads=heads, hidden_sectors=hidden, is_fat32_layout=fat32,
        )
        if fat32:
            (fatsz32, ext_flags, fs_ver, root_clus, fsinfo, bkboot, _res, drv, _r1, sig, volid,
             label, fstype) = _EXT32.unpack_from(data, 36)
            # "BPB_RootEntCnt": must be 0 on FAT32.
            if root_ent != 0:
                raise BadBootSector(f"BPB_RootEntCnt is {root_ent} on FAT32, must be 0")
            # "BPB_FSVer": 0.0 is the only version defined.
            if fs_ver != 0:
                raise BadBootSector(f"BPB_FSVer is {fs_ver >> 8}.{fs_ver & 0xFF}, only 0.0 is known")
            fields.update(
                fat_size=fatsz32, ext_flags=ext_flags, fs_version=fs_ver, root_cluster=root_clus,
                fs_info_sector=fsinfo, backup_boot_sector=bkboot, drive_number=drv,
            )
        else:
            drv, _r1, sig, volid, label, fstype = _EXT16.unpack_from(data, 36)
            fields.update(fat_size=fatsz16, drive_number=drv)
        # "BS_BootSig" 0x29 says the next three fields are present.
        if sig == 0x29:
            fields.update(volume_id=volid, volume_label=label, fs_type_label=fstype)
        bs = cls(**fields)  # type: ignore[arg-type]
        bs._check()
        return bs

    def _check(self) -> None:
        if self.fat_size == 0:
            raise BadBootSector("FAT size is 0")
        # "BPB_RootEntCnt": FAT12/16 need a root directory.  (It should fill whole
        # sectors; mkfs.fat does not always do so with large sectors, and RootDirSectors
        # rounds up, so that is not checked.)
        if not self.is_fat32_layout and self.root_entries == 0:
            raise BadBootSector("BPB_RootEntCnt is 0 on FAT12/16")
        if self.first_data_sector >= self.total_sectors:
            raise BadBootSector(
                f"the FATs and root directory ({self.first_data_sector} sectors) fill the whole "
                f"volume ({self.total_sectors} sectors)"
            )
        n = self.cluster_count
        if n < 1:
            raise BadBootSector("the volume has no data clusters")
        ftype = self.fat_type
        # A FAT12/16 layout cannot have the cluster count of a FAT32 volume.
        if not self.is_fat32_layout and n > FAT16_MAX_CLUSTERS:
            raise BadBootSector(f"{n} clusters needs FAT32 but the BPB has the FAT12/16 layout")
        if ftype == FAT32 and n > FAT32_MAX_CLUSTERS:
            raise BadBootSector(f"{n} clusters is more than FAT32 can address")
        # The FAT must have an entry for every cluster, plus the two reserved ones.
        needed = fat_bytes(ftype, n + 2)
        if self.fat_size * self.bytes_per_sector < needed:
            raise BadBootSector(f"FAT of {self.fat_size} sectors is too small for {n} clusters")
        if ftype == FAT32:
            if not 2 <= self.root_cluster <= self.max_cluster:
                raise BadBootSector(f"BPB_RootClus {self.root_cluster} is outside 2..{self.max_cluster}")
            if self.fs_info_sector >= self.reserved_sectors or self.backup_boot_sector >= self.reserved_sectors:
                raise BadBootSector("BPB_FSInfo or BPB_BkBootSec lies outside the reserved region")

    def emit(self) -> bytes:
        """The boot sector, ``bytes_per_sector`` long, with the 0x55AA signature."""
        fat32 = self.is_fat32_layout
        out = bytearray(self.bytes_per_sector)
        tot16, tot32 = (self.total_sectors, 0) if self.total_sectors < 0x10000 else (0, self.total_sectors)
        # "BS_jmpBoot": a short jump over the BPB to the boot code, then NOP.
        jmp = bytes([0xEB, 0x58 if fat32 else 0x3C, 0x90])
        _BPB.pack_into(
            out, 0, jmp, self.oem_name, self.bytes_per_sector, self.sectors_per_cluster,
            self.reserved_sectors, self.num_fats, 0 if fat32 else self.root_entries, tot16, self.media,
            0 if fat32 else self.fat_size, self.sectors_per_track, self.heads, self.hidden_sectors, tot32,
        )
        if fat32:
            _EXT32.pack_into(
                out, 36, self.fat_size, self.ext_flags, self.fs_version, self.root_cluster,
                self.fs_info_sector, self.backup_boot_sector, bytes(12), self.drive_number, 0, 0x29,
                self.volume_id, self.volume_label, b"FAT32   ",
            )
            code = 90
        else:
            fstype = b"FAT12   " if self.fat_type == FAT12 else b"FAT16   "
            _EXT16.pack_into(out, 36, self.drive_number, 0, 0x29, self.volume_id, self.volume_label, fstype)
            code = 62
        # A boot program that only halts: INT 18h ("no bootable disk"), then loop.
        out[code:code + 4] = b"\xcd\x18\xeb\xfe"
        out[510:512] = b"\x55\xaa"
        return bytes(out)

    def with_(self, **changes: object) -> BootSector:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


# --- FSInfo (fatgen103 "FAT32 FSInfo Sector Structure") ---------------------------------

FSI_LEAD_SIG = 0x41615252
FSI_STRUC_SIG = 0x61417272
FSI_TRAIL_SIG = 0xAA550000
#: "FSI_Free_Count" / "FSI_Nxt_Free" value meaning "unknown".
FSI_UNKNOWN = 0xFFFFFFFF


@dataclass(frozen=True)
class FSInfo:
    """FAT32's hint sector: the free cluster count and where to look for a free one."""

    free_count: int = FSI_UNKNOWN
    next_free: int = FSI_UNKNOWN

    @classmethod
    def parse(cls, data: bytes) -> FSInfo | None:
        """The hints, or ``None`` if the signatures are wrong (the hints are then unknown)."""
        if len(data) < 512:
            return None
        (lead,) = struct.unpack_from("<I", data, 0)
        struc, free, nxt = struct.unpack_from("<III", data, 484)
        (trail,) = struct.unpack_from("<I", data, 508)
        # FSI_LeadSig at 0, FSI_StrucSig at 484, FSI_Free_Count at 488, FSI_Nxt_Free at
        # 492, 12 reserved bytes, FSI_TrailSig at 508 (whatever the sector size).
        if lead != FSI_LEAD_SIG or struc != FSI_STRUC_SIG or trail != FSI_TRAIL_SIG:
            return None
        return cls(free, nxt)

    def emit(self, sector_size: int) -> bytes:
        """The FSInfo sector, ``sector_size`` long."""
        out = bytearray(sector_size)
        struct.pack_into("<I", out, 0, FSI_LEAD_SIG)
        struct.pack_into("<III", out, 484, FSI_STRUC_SIG, self.free_count, self.next_free)
        struct.pack_into("<I", out, 508, FSI_TRAIL_SIG)
        return bytes(out)


# --- FAT entries (fatgen103 "FAT Data Structure") ---------------------------------------

#: Values at or above these are end-of-chain marks ("EOC"); the emitted EOC is the max.
EOC = {FAT12: 0xFF8, FAT16: 0xFFF8, FAT32: 0x0FFFFFF8}
EOC_MARK = {FAT12: 0xFFF, FAT16: 0xFFFF, FAT32: 0x0FFFFFFF}
#: The "bad cluster" mark.
BAD = {FAT12: 0xFF7, FAT16: 0xFFF7, FAT32: 0x0FFFFFF7}


def fat_bytes(fat_type: int, entries: int) -> int:
    """Bytes a FAT needs for ``entries`` entries (12-bit entries are packed in pairs)."""
    if fat_type == FAT12:
        return (entries * 3 + 1) // 2
    return entries * (fat_type // 8)


def get_entry(fat: bytes | bytearray, fat_type: int, n: int) -> int:
    """FAT entry ``n`` (fatgen103: FAT12 entries straddle bytes, FAT32 ignores the top 4 bits)."""
    if fat_type == FAT16:
        return fat[2 * n] | fat[2 * n + 1] << 8
    if fat_type == FAT32:
        return int.from_bytes(fat[4 * n:4 * n + 4], "little") & 0x0FFFFFFF
    off = n + (n >> 1)
    v = fat[off] | fat[off + 1] << 8
    # "If N is odd, the entry is the high 12 bits of the word, else the low 12 bits."
    return v >> 4 if n & 1 else v & 0xFFF


def set_entry(fat: bytearray, fat_type: int, n: int, value: int) -> None:
    """Store ``value`` in FAT entry ``n``, preserving the neighbouring nibble / reserved bits."""
    if fat_type == FAT16:
        fat[2 * n] = value & 0xFF
        fat[2 * n + 1] = value >> 8 & 0xFF
    elif fat_type == FAT32:
        # "The high 4 bits of a FAT32 FAT entry are reserved": keep them as they are.
        old = int.from_bytes(fat[4 * n:4 * n + 4], "little")
        fat[4 * n:4 * n + 4] = ((old & 0xF0000000) | (value & 0x0FFFFFFF)).to_bytes(4, "little")
    else:
        off = n + (n >> 1)
        if n & 1:
            fat[off] = (fat[off] & 0x0F) | (value << 4 & 0xF0)
            fat[off + 1] = value >> 4 & 0xFF
        else:
            fat[off] = value & 0xFF
            fat[off + 1] = (fat[off + 1] & 0xF0) | (value >> 8 & 0x0F)


def fat_entry_byte_range(fat_type: int, n: int) -> tuple[int, int]:
    """Byte offsets ``[start, end)`` of entry ``n`` in the FAT (a FAT12 entry spans two bytes)."""
    if fat_type == FAT12:
        off = n + (n >> 1)
        return off, off + 2
    width = fat_type // 8
    return n * width, n * width + width


# --- directory entries (fatgen103 "FAT Directory Structure") ----------------------------

ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
#: "ATTR_LONG_NAME": the four low attributes together mark a long-name entry.
ATTR_LONG_NAME = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID
ATTR_LONG_NAME_MASK = ATTR_LONG_NAME | ATTR_DIRECTORY | ATTR_ARCHIVE

#: "DIR_Name[0]": 0xE5 marks a free entry, 0x00 a free entry with none after it; a
#: real 0xE5 first character is stored as 0x05 (KANJI lead byte).
FREE_ENTRY = 0xE5
END_ENTRY = 0x00
KANJI_E5 = 0x05

#: Windows NT and Linux keep 8.3 names' case in DIR_NTRes: base (0x08), extension (0x10).
NTRES_LOWER_BASE = 0x08
NTRES_LOWER_EXT = 0x10

DIR_ENTRY_SIZE = 32
#: A directory holds at most 65536 entries (fatgen103 "FAT Directory Structure": 2 MiB).
MAX_DIR_ENTRIES = 65536

_DIRENT = struct.Struct("<11sBBBHHHHHHHI")


@dataclass
class DirEntry:
    """One 32-byte short (8.3) directory entry."""

    name: bytes = b" " * 11
    attr: int = 0
    nt_res: int = 0
    crt_time_tenth: int = 0
    crt_time: int = 0
    crt_date: int = 0
    acc_date: int = 0
    cluster: int = 0
    wrt_time: int = 0
    wrt_date: int = 0
    size: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> DirEntry:
        """Parse the entry at ``offset``."""
        (name, attr, ntres, tenth, ctime, cdate, adate, hi, wtime, wdate, lo,
         size) = _DIRENT.unpack_from(data, offset)
        # "DIR_FstClusHI" is only meaningful on FAT32; FAT12/16 keep it 0 (callers mask it).
        return cls(name, attr, ntres, tenth, ctime, cdate, adate, hi << 16 | lo, wtime, wdate, size)

    def emit(self) -> bytes:
        """The 32 bytes."""
        return _DIRENT.pack(
            self.name, self.attr, self.nt_res, self.crt_time_tenth, self.crt_time, self.crt_date,
            self.acc_date, self.cluster >> 16 & 0xFFFF, self.wrt_time, self.wrt_date,
            self.cluster & 0xFFFF, self.size,
        )

    @property
    def is_dir(self) -> bool:
        """Whether ``ATTR_DIRECTORY`` is set."""
        return bool(self.attr & ATTR_DIRECTORY)

    @property
    def is_volume_label(self) -> bool:
        """The volume label entry (``ATTR_VOLUME_ID`` without the long-name combination)."""
        return self.attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY) == ATTR_VOLUME_ID

    def display_name(self, codepage: str = "cp437") -> str:
        """``BASE.EXT`` with NT case bits applied (the name a long-name-less entry shows).

        Bytes of 0x80 and up are characters of the OEM ``codepage`` (cp437 unless the
        volume was written with another one), as DOS, mtools and Linux read them.
        """
        raw = bytearray(self.name)
        if raw[0] == KANJI_E5:
            raw[0] = FREE_ENTRY
        base = raw[:8].decode(codepage, errors="replace").rstrip(" ")
        ext = raw[8:].decode(codepage, errors="replace").rstrip(" ")
        if self.nt_res & NTRES_LOWER_BASE:
            base = base.lower()
        if self.nt_res & NTRES_LOWER_EXT:
            ext = ext.lower()
        return f"{base}.{ext}" if ext else base


def is_lfn(data: bytes | bytearray | memoryview, offset: int) -> bool:
    """Whether the entry at ``offset`` is a long-name entry (fatgen103 "ATTR_LONG_NAME_MASK")."""
    return data[offset + 11] & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME


# --- long-name entries (fatgen103 "FAT Long Directory Entries") -------------------------

#: "LDIR_Ord": the last (first on disk) entry of a set has this bit.
LAST_LONG_ENTRY = 0x40
#: Each long entry holds 13 UCS-2 characters: 5 at offset 1, 6 at 14, 2 at 28.
LFN_CHARS = 13
MAX_LFN_LENGTH = 255
_LFN_OFFSETS = tuple(range(1, 11, 2)) + tuple(range(14, 26, 2)) + tuple(range(28, 32, 2))


def lfn_checksum(short_name: bytes) -> int:
    """fatgen103 "ChkSum()": rotate right one bit and add, over the 11 name bytes."""
    s = 0
    for b in short_name:
        s = (((s & 1) << 7) + (s >> 1) + b) & 0xFF
    return s


def lfn_parts(data: bytes | bytearray | memoryview, offset: int) -> tuple[int, int, list[int]]:
    """``(LDIR_Ord, LDIR_Chksum, 13 UCS-2 code units)`` of the long entry at ``offset``."""
    units = [data[offset + o] | data[offset + o + 1] << 8 for o in _LFN_OFFSETS]
    return data[offset], data[offset + 13], units


def lfn_padding_ok(units: list[int]) -> bool:
    """Whether what follows a long name's 0x0000 terminator is 0xFFFF padding only."""
    try:
        end = units.index(0)
    except ValueError:
        return True
    return all(u == 0xFFFF for u in units[end + 1:])


def lfn_units_to_str(units: list[int]) -> str:
    """Decode a long name's code units: stop at the 0x0000 terminator, drop 0xFFFF padding."""
    out = []
    for u in units:
        if u == 0:
            break
        out.append(u)
    raw = b"".join(u.to_bytes(2, "little") for u in out)
    return raw.decode("utf-16-le", errors="replace")


# --- dates and times (fatgen103 "Date and Time Formats") --------------------------------


def encode_datetime(year: int, month: int, day: int, hour: int, minute: int, second: int) -> tuple[int, int]:
    """``(date, time)`` in FAT form; years outside 1980..2107 are clamped.

    Date bits 15-9 are year-1980, 8-5 month, 4-0 day; time bits 15-11 hour, 10-5
    minute, 4-0 seconds/2.
    """
    if year < 1980:
        return (1 << 5) | 1, 0
    if year > 2107:
        year, month, day, hour, minute, second = 2107, 12, 31, 23, 59, 58
    return (year - 1980) << 9 | month << 5 | day, hour << 11 | minute << 5 | second // 2


def decode_datetime(date: int, time: int) -> tuple[int, int, int, int, int, int]:
    """``(year, month, day, hour, minute, second)``; invalid fields are clamped to valid ones."""
    year = 1980 + (date >> 9)
    month = min(max(date >> 5 & 0xF, 1), 12)
    day = max(date & 0x1F, 1)
    hour = min(time >> 11, 23)
    minute = min(time >> 5 & 0x3F, 59)
    second = min((time & 0x1F) * 2, 59)
    return year, month, day, hour, minute, second
