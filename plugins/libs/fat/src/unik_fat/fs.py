"""The FAT filesystem over any :class:`unik.devices.Block`: an asyncio API.

Layers, from the disk up: :mod:`.formats` (bytes <-> values), :class:`Volume` (the BPB,
the in-memory FAT, the metadata sector cache and the write order), directories
(:class:`_Dir`, parsed once and kept in memory), then :class:`FatFileSystem` and
:class:`FatFile`, which implement :class:`unik.devices.FileSystem` and
:class:`unik.devices.File`.

Write order.  File data goes to the device as it is written.  FAT and directory
changes stay in memory until :meth:`FatFileSystem.flush` (or cache pressure), which
writes the FAT (every copy), then directory sectors, then frees the clusters released
since the last flush (so they are never reused before the entries pointing at them are
gone), then FSInfo, then flushes the device.  A crash at any point leaves at worst
lost clusters or a file shorter than its chain, which ``fsck.fat -a`` repairs, and
every file flushed before stays intact.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from unik import lifecycle
from unik.devices import Block, FileStat
from unik.errors import DeviceClosed

from . import accel as _accel
from . import formats as F
from .cache import SectorCache
from .errors import (
    BadBootSector,
    BadChain,
    BadDirectory,
    CorruptFilesystem,
    DirectoryNotEmpty,
    FatError,
    FileExists,
    FileNotFound,
    InvalidName,
    IsADirectory,
    NoSpace,
    NotADirectory,
    ReadOnlyFilesystem,
)

# mkfs at load, not when a blank disk is found: under spt's sandbox no module file can
# be read once the application runs (connect runs after the filter is on).
from .mkfs import mkfs
from .names import (
    DEFAULT_CODEPAGE,
    alias,
    check_codepage,
    check_long_name,
    fold,
    long_name_problem,
    plain_short,
    short_name_problem,
    short_to_text,
)

_DOT = b".          "
_DOTDOT = b"..         "

_CHAIN_ERRORS = {
    1: "loops (it is longer than the volume has clusters)",
    2: "leaves the volume (a cluster number out of range)",
    3: "runs into a free cluster",
    4: "runs into a bad cluster",
}


#: The largest FAT file: DIR_FileSize is 32 bits.
MAX_FILE_SIZE = 0xFFFFFFFF


async def _each(chunks: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    """The chunks of a synchronous or asynchronous iterable."""
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk


def _now_fields(now_ns: int) -> tuple[int, int, int]:
    """``(date, time, tenths)`` of a UTC instant in FAT form."""
    t = time.gmtime(now_ns // 1_000_000_000)
    date, tm = F.encode_datetime(t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    # DIR_CrtTimeTenth: 0..199, hundredths of a second added to the 2-second time.
    tenth = (t.tm_sec % 2) * 100 + (now_ns // 10_000_000) % 100
    return date, tm, tenth


def _to_ns(date: int, tm: int, tenth: int = 0) -> int:
    if date == 0:
        return 0
    secs = _fat_seconds(date, tm)
    if secs is None:
        return 0
    return secs * 1_000_000_000 + min(tenth, 199) * 10_000_000


@lru_cache(maxsize=4096)
def _fat_seconds(date: int, tm: int) -> int | None:
    """Seconds since the epoch of a FAT date and time (``None`` if out of range).

    Cached: a directory's entries share few distinct stamps, and ``calendar.timegm``
    is the largest cost of a ``stat`` without it.
    """
    y, mo, d, h, mi, s = F.decode_datetime(date, tm)
    try:
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        return None


@dataclass(eq=False)
class _Node:
    """A file or directory: its directory entry as kept in memory."""

    name: str
    entry: F.DirEntry
    parent: _Dir | None
    slot: int = -1  # index of the short entry in the parent
    nlfn: int = 0  # long-name entries before it
    chain: list[int] | None = None
    dirty: bool = False
    opened: int = 0

    @property
    def is_dir(self) -> bool:
        return self.entry.is_dir


@dataclass(eq=False)
class _Dir:
    """A parsed directory: its entries by folded name, and which slots are used."""

    node: _Node
    cluster: int  # 0: the FAT12/16 fixed root
    chain: list[int]
    nslots: int
    used: bytearray  # 1 per slot in use (including "." and ".." and the label)
    end: int  # first never-used slot (DIR_Name[0] == 0x00)
    entries: dict[str, _Node] = field(default_factory=dict)
    shorts: dict[bytes, _Node] = field(default_factory=dict)
    tails: dict[str, int] = field(default_factory=dict)  # last "~N" used per basis name
    #: Entries whose names are invalid on disk (folded name, or "#slot"): what is wrong, for
    #: errors and warnings; they are never followed.
    invalid: dict[str, str] = field(default_factory=dict)
    #: Other problems found while reading it (orphaned long-name entries...): for ``check``.
    problems: list[str] = field(default_factory=list)


class Volume:
    """The BPB, the FAT in memory, the metadata cache and the write order."""

    def __init__(self, block: Block, bs: F.BootSector, fat: bytearray, cache_sectors: int) -> None:
        self.block = block
        self.bs = bs
        self.fat = fat
        self.type = bs.fat_type
        self.max_cluster = bs.max_cluster
        self.cluster_size = bs.cluster_size
        self.spc = bs.sectors_per_cluster
        self.bps = bs.bytes_per_sector
        self.factor = bs.bytes_per_sector // block.sector_size
        self.cache = SectorCache(block, bs.bytes_per_sector, cache_sectors)
        self.cache.on_pressure = self.sync
        self.fat_dirty: dict[int, None] = {}
        self.pending_free: list[int] = []
        self.free = _accel.impl.count_free(fat, self.type, self.max_cluster)
        self.next_free = 2
        self.fsinfo_dirty = False
        self.read_only = block.read_only
        mirror_off = self.type == F.FAT32 and bs.ext_flags & 0x80
        self.fat_copies = [bs.ext_flags & 0x0F] if mirror_off else list(range(bs.num_fats))

    # --- FAT -------------------------------------------------------------------------

    def get(self, n: int) -> int:
        """FAT entry ``n``."""
        return F.get_entry(self.fat, self.type, n)

    def set(self, n: int, value: int) -> None:
        """Set FAT entry ``n`` and remember its sector(s) as dirty."""
        F.set_entry(self.fat, self.type, n, value)
        a, b = F.fat_entry_byte_range(self.type, n)
        self.fat_dirty[a // self.bps] = None
        self.fat_dirty[(b - 1) // self.bps] = None

    def chain(self, first: int, what: str) -> list[int]:
        """The cluster chain from ``first``; :class:`BadChain` if it is broken."""
        clusters, status = _accel.impl.walk_chain(self.fat, self.type, first, self.max_cluster)
        if status:
            raise BadChain(f"the cluster chain of {what} (from cluster {first}) {_CHAIN_ERRORS[status]}")
        return list(clusters)

    def allocate(self, count: int, after: int = 0) -> list[int]:
        """``count`` free clusters linked into a chain, appended to cluster ``after``."""
        if count == 0:
            return []
        if count > self.free:
            raise NoSpace(f"no space left: need {count} clusters, {self.free} free")
        hint = after + 1 if after else self.next_free
        got: list[int] = _accel.impl.alloc(self.fat, self.type, hint, count, self.max_cluster)
        if len(got) != count:
            raise NoSpace(f"no space left: need {count} clusters")
        w = self.bps * 2 // 3 if self.type == F.FAT12 else self.bps // (self.type // 8)
        if self.type == F.FAT12:
            for c in got:
                a, b = F.fat_entry_byte_range(F.FAT12, c)
                self.fat_dirty[a // self.bps] = None
                self.fat_dirty[(b - 1) // self.bps] = None
        else:
            for s in sorted({c // w for c in got}):
                self.fat_dirty[s] = None
        if after:
            self.set(after, got[0])
        self.free -= count
        self.next_free = got[-1] + 1 if got[-1] < self.max_cluster else 2
        self.fsinfo_dirty = True
        return got

    def release(self, clusters: list[int]) -> None:
        """Free ``clusters`` at the next :meth:`sync`, after the entries that used them."""
        self.pending_free.extend(clusters)

    def unallocate(self, clusters: list[int]) -> None:
        """Free at once ``clusters`` that no directory entry ever pointed to (a failed write's)."""
        for c in clusters:
            self.set(c, 0)
        self.free += len(clusters)
        if clusters:
            self.fsinfo_dirty = True

    # --- sectors ---------------------------------------------------------------------

    def cluster_sector(self, cluster: int) -> int:
        """First logical sector of ``cluster``."""
        return self.bs.cluster_sector(cluster)

    async def read_runs(self, clusters: list[int], offset: int, length: int) -> bytes:
        """``length`` bytes starting ``offset`` bytes into the data of ``clusters``."""
        cs = self.cluster_size
        out: list[bytes] = []
        end = offset + length
        while offset < end:
            ci = offset // cs
            cj = _accel.impl.contiguous(clusters, ci, (end - 1) // cs)  # extend over adjacent clusters
            run_start = ci * cs
            run_end = min((cj + 1) * cs, end)
            s0 = (offset - run_start) // self.bps
            s1 = (run_end - run_start + self.bps - 1) // self.bps
            base = self.cluster_sector(clusters[ci])
            data = await self.block.read((base + s0) * self.factor, (s1 - s0) * self.factor)
            skip = offset - run_start - s0 * self.bps
            want = run_end - offset
            out.append(data if skip == 0 and len(data) == want else data[skip:skip + want])
            offset = run_end
        return out[0] if len(out) == 1 else b"".join(out)

    async def write_runs(self, clusters: list[int], offset: int, data: bytes, old_size: int) -> None:
        """Write ``data`` at ``offset`` into the data of ``clusters``.

        Partial sectors are read back first only where they hold bytes of the file below
        ``old_size`` that this write keeps.
        """
        cs, bps = self.cluster_size, self.bps
        mv = memoryview(data)
        pos, end = offset, offset + len(data)
        while pos < end:
            ci = pos // cs
            cj = _accel.impl.contiguous(clusters, ci, (end - 1) // cs)
            run_start = ci * cs
            run_end = min((cj + 1) * cs, end)
            s0 = (pos - run_start) // bps
            s1 = (run_end - run_start + bps - 1) // bps
            head = pos - run_start - s0 * bps
            tail = s1 * bps - (run_end - run_start)
            chunk = mv[pos - offset:run_end - offset]
            sector = self.cluster_sector(clusters[ci]) + s0
            if head or tail:
                buf = bytearray((s1 - s0) * bps)
                if head and run_start + s0 * bps < old_size:
                    buf[:bps] = await self.block.read(sector * self.factor, self.factor)
                if tail and run_end < old_size and (s1 - s0 > 1 or not head):
                    buf[-bps:] = await self.block.read((sector + s1 - s0 - 1) * self.factor, self.factor)
                buf[head:head + len(chunk)] = chunk
                await self.block.write(sector * self.factor, bytes(buf))
            else:
                await self.block.write(sector * self.factor, chunk.tobytes() if len(chunk) != len(data) else data)
            pos = run_end

    async def zero_cluster(self, cluster: int) -> None:
        """Fill a (new directory) cluster with zeros on the device and in the cache."""
        first = self.cluster_sector(cluster)
        await self.cache.write_raw(first, bytes(self.cluster_size))
        for s in range(first, first + self.spc):
            self.cache.put(s, bytes(self.bps))

    # --- write order -----------------------------------------------------------------

    async def _write_fat(self) -> None:
        order = sorted(self.fat_dirty)
        self.fat_dirty.clear()
        bps = self.bps
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and order[j] == order[j - 1] + 1:
                j += 1
            data = bytes(self.fat[order[i] * bps:(order[j - 1] + 1) * bps])
            # Every FAT copy, first to last ("BPB_NumFATs"; mirroring is the default), or
            # only the active one when FAT32's BPB_ExtFlags bit 7 turns mirroring off.
            for k in self.fat_copies:
                await self.cache.write_raw(self.bs.first_fat_sector + k * self.bs.fat_size + order[i], data)
            i = j

    async def sync(self) -> None:
        """Write FAT, then directories, then frees, then FSInfo; flush the device."""
        if self.read_only:
            return
        await self._write_fat()
        await self.cache.write_back()
        if self.pending_free:
            pend, self.pending_free = self.pending_free, []
            for c in pend:
                self.set(c, 0)
            self.free += len(pend)
            self.fsinfo_dirty = True
            await self._write_fat()
        if self.fsinfo_dirty and self.type == F.FAT32 and self.bs.fs_info_sector:
            info = F.FSInfo(self.free, self.next_free).emit(self.bps)
            await self.cache.write_raw(self.bs.fs_info_sector, info)
        self.fsinfo_dirty = False
        await self.block.flush()


class FatFileSystem:
    """A FAT12/16/32 filesystem on a :class:`Block` device (a :class:`unik.devices.FileSystem`)."""

    KIND = "fs"

    def __init__(self, vol: Volume, clock: Callable[[], int] | None = None,
                 codepage: str = DEFAULT_CODEPAGE) -> None:
        self.vol = vol
        self._clock = clock or time.time_ns
        #: The OEM code page of short names (bytes 0x80 and up), cp437 unless told otherwise.
        self.codepage = codepage
        self._closed = False
        bs = vol.bs
        root_entry = F.DirEntry(name=b"           ", attr=F.ATTR_DIRECTORY,
                                cluster=bs.root_cluster if vol.type == F.FAT32 else 0)
        self._root_node = _Node("/", root_entry, None)
        self._dirs: dict[int, _Dir] = {}
        self._open_nodes: set[_Node] = set()

    # --- mounting --------------------------------------------------------------------

    @classmethod
    async def mount(cls, block: Block, *, cache_sectors: int = 4096,
                    clock: Callable[[], int] | None = None, codepage: str = DEFAULT_CODEPAGE) -> FatFileSystem:
        """Read the boot sector and the FAT of ``block``; raises :class:`CorruptFilesystem`.

        ``codepage``: the OEM code page short names are written in (``cp437``, as mtools
        and Linux assume; ``cp850`` for Western European DOS...).
        """
        try:
            check_codepage(codepage)
        except ValueError as exc:
            raise FatError(str(exc)) from None
        if block.sector_size > 4096 or block.sector_size < 512:
            raise CorruptFilesystem(f"unsupported device sector size {block.sector_size}")
        head = await block.read(0, max(1, 512 // block.sector_size))
        bps = int.from_bytes(head[11:13], "little")
        if bps in F.VALID_SECTOR_SIZES and bps > len(head):
            head = await block.read(0, bps // block.sector_size)
        if not any(head[:512]):
            raise BadBootSector(
                "the device is blank (sector 0 is all zeros): format it with `unik fat mkfs`, "
                "mkfs.fat, or `format_if_blank = true` in the device's table"
            )
        bs = F.BootSector.parse(head)
        if bs.bytes_per_sector % block.sector_size:
            raise CorruptFilesystem(
                f"filesystem sectors of {bs.bytes_per_sector} bytes on a device with "
                f"{block.sector_size}-byte sectors are not supported"
            )
        factor = bs.bytes_per_sector // block.sector_size
        if bs.total_sectors * factor > block.sectors:
            raise CorruptFilesystem(
                f"the boot sector says {bs.total_sectors} sectors but the device has "
                f"{block.sectors // factor}"
            )
        # The active FAT: FAT32 may disable mirroring (BPB_ExtFlags bit 7, bits 0-3 the
        # active FAT); otherwise FAT #0 is the reference copy.
        active = bs.ext_flags & 0x0F if bs.fat_type == F.FAT32 and bs.ext_flags & 0x80 else 0
        if active >= bs.num_fats:
            raise CorruptFilesystem(f"BPB_ExtFlags names FAT #{active} of {bs.num_fats}")
        fat_bytes = F.fat_bytes(bs.fat_type, bs.max_cluster + 1)
        fat_sectors = (fat_bytes + bs.bytes_per_sector - 1) // bs.bytes_per_sector
        start = bs.first_fat_sector + active * bs.fat_size
        fat = bytearray(await block.read(start * factor, fat_sectors * factor))
        # Keep one spare byte so 12-bit entry pairs at the very end can be read whole.
        fat += b"\x00" * 4
        vol = Volume(block, bs, fat, cache_sectors)
        if bs.fat_type == F.FAT32 and bs.fs_info_sector:
            info = F.FSInfo.parse(await block.read(bs.fs_info_sector * factor, factor))
            if info is not None and 2 <= info.next_free <= bs.max_cluster:
                vol.next_free = info.next_free
        fs = cls(vol, clock, codepage)
        await fs._dir(fs._root_node)  # reads and checks the root directory
        # A VM snapshot: everything written back before it, everything read again after a restore.
        lifecycle.subscribe(lifecycle.BEFORE_SNAPSHOT, fs._before_snapshot)
        lifecycle.subscribe(lifecycle.RESUMED, fs._resumed)
        return fs

    def _before_snapshot(self) -> Awaitable[None] | None:
        """:data:`unik.lifecycle.BEFORE_SNAPSHOT`: write every change back (a snapshot holds no dirty sector)."""
        return None if self._closed or self.vol.read_only else self.flush()

    async def _resumed(self) -> None:
        """:data:`unik.lifecycle.RESUMED`: forget what was read before the snapshot and mount again.

        The disk may have changed while the snapshot waited (another instance wrote it, the
        user replaced it): its boot sector, FAT and directories are read anew.  Files open
        across the snapshot keep their old entries.
        """
        if self._closed:
            return
        fresh = await type(self).mount(self.vol.block, cache_sectors=self.vol.cache.capacity,
                                       codepage=self.codepage)
        fresh._unsubscribe()
        self.vol, self._root_node, self._dirs = fresh.vol, fresh._root_node, fresh._dirs

    def _unsubscribe(self) -> None:
        lifecycle.unsubscribe(lifecycle.BEFORE_SNAPSHOT, self._before_snapshot)
        lifecycle.unsubscribe(lifecycle.RESUMED, self._resumed)

    @classmethod
    async def connect(cls, block: Block, *, cache_sectors: int = 4096, format_if_blank: bool = False,
                      codepage: str = DEFAULT_CODEPAGE, **mkfs_options: Any) -> FatFileSystem:
        """Mount the filesystem on ``block`` (the device's ``connect`` for generated mains).

        With ``format_if_blank``, a device whose first sector is all zeros is formatted
        first (``mkfs_options`` go to :func:`unik_fat.mkfs.mkfs`).
        """
        if format_if_blank:
            first = await block.read(0, 1)
            if not any(first):
                await mkfs(block, **mkfs_options)
        return await cls.mount(block, cache_sectors=cache_sectors, codepage=codepage)

    async def disconnect(self) -> None:
        """Flush everything and release the filesystem (the device stays connected)."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        self._unsubscribe()

    # --- internals: directories ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosed("the filesystem is disconnected")

    def _check_writable(self) -> None:
        self._check_open()
        if self.vol.read_only:
            raise ReadOnlyFilesystem("the filesystem is on a read-only device")

    def _slot_pos(self, d: _Dir, slot: int) -> tuple[int, int]:
        """``(logical sector, byte offset)`` of directory slot ``slot``."""
        off = slot * 32
        if d.cluster == 0:
            return self.vol.bs.root_dir_sector + off // self.vol.bps, off % self.vol.bps
        cs = self.vol.cluster_size
        c = d.chain[off // cs]
        within = off % cs
        return self.vol.cluster_sector(c) + within // self.vol.bps, within % self.vol.bps

    async def _dir(self, node: _Node) -> _Dir:
        """The parsed directory of ``node`` (read on first use)."""
        cluster = node.entry.cluster
        key = cluster
        d = self._dirs.get(key)
        if d is not None:
            return d
        vol = self.vol
        if cluster == 0:
            if vol.type == F.FAT32 or node.parent is not None:
                raise BadDirectory(f"directory {self._path_of(node)!r} has no cluster")
            chain: list[int] = []
            nslots = vol.bs.root_entries
            sectors = [vol.bs.root_dir_sector + i for i in range(vol.bs.root_dir_sectors)]
        else:
            chain = vol.chain(cluster, f"directory {self._path_of(node)!r}")
            per = vol.cluster_size // 32
            nslots = len(chain) * per
            if nslots > F.MAX_DIR_ENTRIES + per:
                raise BadDirectory(f"directory {self._path_of(node)!r} is larger than 65536 entries")
            sectors = [vol.cluster_sector(c) + i for c in chain for i in range(vol.spc)]
        d = _Dir(node, cluster, chain, nslots, bytearray(nslots), nslots)
        per_sector = vol.bps // 32
        lfn_units: list[list[int]] = []
        lfn_sum = -1
        lfn_next = 0
        lfn_start = -1
        ended = False
        where = self._path_of(node)
        dots: dict[int, F.DirEntry] = {}

        def orphaned(slot: int) -> None:
            d.problems.append(f"directory {where!r}: long-name entries from entry {lfn_start} to {slot - 1} "
                              "belong to no entry (orphaned)")

        for si, sector in enumerate(sectors):
            if ended:
                break
            buf = await vol.cache.get(sector)
            for k in range(per_sector):
                slot = si * per_sector + k
                off = k * 32
                first = buf[off]
                if first == F.END_ENTRY:
                    d.end = slot
                    ended = True
                    break
                if first == F.FREE_ENTRY:
                    if lfn_units:
                        orphaned(slot)
                    lfn_next, lfn_units = 0, []
                    continue
                d.used[slot] = 1
                if F.is_lfn(buf, off):
                    ordv, chk, units = F.lfn_parts(buf, off)
                    if buf[off + 12] or buf[off + 26] or buf[off + 27]:
                        d.problems.append(f"directory {where!r}: long-name entry {slot} has a reserved field "
                                          "set (LDIR_Type and LDIR_FstClusLO must be 0)")
                    if ordv & F.LAST_LONG_ENTRY:
                        if lfn_units:
                            orphaned(slot)
                        n = ordv & 0x1F
                        lfn_units = [units]
                        lfn_sum, lfn_next, lfn_start = chk, n - 1, slot
                        if not 1 <= n <= 20:  # 20 entries of 13 units hold the longest name
                            orphaned(slot + 1)
                            lfn_next, lfn_units = 0, []
                    elif lfn_next and ordv == lfn_next and chk == lfn_sum:
                        lfn_units.append(units)
                        lfn_next -= 1
                    else:
                        if not lfn_units:
                            lfn_start = slot
                        orphaned(slot + 1)
                        lfn_next = 0
                        lfn_units = []
                    continue
                e = F.DirEntry.parse(buf, off)
                if vol.type != F.FAT32:
                    e.cluster &= 0xFFFF  # DIR_FstClusHI is not used on FAT12/16
                long = None
                problem = None
                if lfn_units and lfn_next == 0 and F.lfn_checksum(e.name) == lfn_sum:
                    flat = [u for part in reversed(lfn_units) for u in part]
                    long = F.lfn_units_to_str(flat)
                    if not F.lfn_padding_ok(flat):
                        problem = "the long name has bytes after its NUL terminator"
                elif lfn_units:
                    orphaned(slot)
                nlfn = slot - lfn_start if long else 0
                lfn_units, lfn_next = [], 0
                if e.is_volume_label:
                    continue
                if e.name in (_DOT, _DOTDOT) and not long:
                    if node.parent is not None and slot == (0 if e.name == _DOT else 1):
                        dots[slot] = e
                        continue  # where FAT puts them: the first two entries of a subdirectory
                    problem = f"a {short_to_text(e.name)!r} entry outside the first two of a subdirectory"
                else:
                    problem = problem or short_name_problem(e.name) or (long_name_problem(long) if long else None)
                name = long or e.display_name(self.codepage)
                child = _Node(name, e, d, slot, nlfn)
                key_name = fold(name)
                if problem is not None:
                    where = f"{self._path_of(node).rstrip('/')}/{name!r}"
                    d.invalid.setdefault(key_name if name else f"#{slot}",
                                         f"directory entry {slot} of {self._path_of(node)!r} ({where}): {problem}")
                    d.shorts.setdefault(e.name, child)  # its slots and alias stay taken
                    continue
                if key_name in d.entries or not name:
                    continue  # duplicate names: the first wins, like other implementations
                d.entries[key_name] = child
                d.shorts[e.name] = child
        if lfn_units:
            orphaned(d.end)
        if node.parent is not None:
            # "." points at the directory itself, ".." at its parent (0 for the root, even on FAT32).
            parent = node.parent
            up = 0 if parent.node.parent is None else parent.cluster
            for slot, (label, want) in enumerate(((".", cluster), ("..", up))):
                dot = dots.get(slot)
                if dot is None or not dot.is_dir or dot.cluster != want:
                    d.problems.append(f"directory {where!r}: entry {slot} is not a {label!r} entry for cluster "
                                      f"{want}" + (f" (it points at {dot.cluster})" if dot is not None else ""))
        self._dirs[key] = d
        return d

    def _path_of(self, node: _Node) -> str:
        parts = []
        n: _Node | None = node
        depth = 0
        while n is not None and n.parent is not None and depth < 4096:
            parts.append(n.name)
            n = n.parent.node
            depth += 1
        return "/" + "/".join(reversed(parts))

    @staticmethod
    def _split(path: str) -> list[str]:
        parts: list[str] = []
        for p in path.replace("\\", "/").split("/"):
            if p in ("", "."):
                continue
            if p == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(p)
        return parts

    @staticmethod
    def _missing(d: _Dir, key: str, path: str) -> FatError:
        """Why entry ``key`` of ``d`` cannot be followed: invalid on disk (named) or absent."""
        bad = d.invalid.get(key)
        return BadDirectory(f"{path!r}: {bad}") if bad is not None else FileNotFound(path)

    async def _lookup(self, path: str) -> _Node:
        return await self._walk(self._split(path), path)

    async def _parent(self, path: str) -> tuple[_Dir, str]:
        parts = self._split(path)
        if not parts:
            raise InvalidName(f"{path!r} names the root directory")
        node = await self._walk(parts[:-1], path)
        if not node.is_dir:
            raise NotADirectory(path)
        return await self._dir(node), parts[-1]

    async def _walk(self, parts: Sequence[str], path: str) -> _Node:
        """The node ``parts`` lead to from the root (``path``, the whole, is what errors name)."""
        node = self._root_node
        for part in parts:
            if not node.is_dir:
                raise NotADirectory(path)
            d = await self._dir(node)
            key = fold(part)
            child = d.entries.get(key)
            if child is None:
                raise self._missing(d, key, path)
            node = child
        return node

    async def _write_slot(self, d: _Dir, slot: int, data: bytes) -> None:
        sector, off = self._slot_pos(d, slot)
        buf = await self.vol.cache.get(sector)
        buf[off:off + 32] = data
        await self.vol.cache.mark_dirty(sector)

    async def _store(self, node: _Node) -> None:
        """Write ``node``'s short entry back to its parent directory."""
        if node.parent is None:
            return
        await self._write_slot(node.parent, node.slot, node.entry.emit())
        node.dirty = False

    async def _grow(self, d: _Dir) -> None:
        """Add a zeroed cluster to directory ``d``."""
        if d.cluster == 0:
            raise NoSpace("the root directory is full (FAT12/16 roots have a fixed size)")
        per = self.vol.cluster_size // 32
        if d.nslots + per > F.MAX_DIR_ENTRIES:
            raise NoSpace("a FAT directory holds at most 65536 entries")
        (c,) = self.vol.allocate(1, after=d.chain[-1])
        await self.vol.zero_cluster(c)
        d.chain.append(c)
        d.nslots += per
        d.used += bytearray(per)

    async def _take_slots(self, d: _Dir, count: int) -> int:
        """Find ``count`` consecutive free slots (growing the directory if needed).

        A set of entries never straddles a sector boundary when it fits in one sector:
        a sector write lands whole or not at all, so a crash cannot leave a long-name
        fragment without its first entry, which ``fsck.fat -a`` would not repair.
        """
        per = self.vol.bps // 32
        fits = count <= per
        pattern = bytes(count)
        i = d.used.find(pattern, 0, d.end)
        while i >= 0 and i + count <= d.end:
            if not fits or i // per == (i + count - 1) // per:
                return i
            i = d.used.find(pattern, (i // per + 1) * per, d.end)
        start = d.end
        if fits and start // per != (start + count - 1) // per:
            start = (start // per + 1) * per
        while start + count > d.nslots:
            await self._grow(d)
        for slot in range(d.end, start):
            # Skipped slots become free entries, so readers go on past them.
            sector, off = self._slot_pos(d, slot)
            buf = await self.vol.cache.get(sector)
            buf[off] = F.FREE_ENTRY
            await self.vol.cache.mark_dirty(sector)
        d.end = start + count
        if d.end < d.nslots:
            # Keep the end marker right after the new entries (what follows may be stale).
            sector, off = self._slot_pos(d, d.end)
            buf = await self.vol.cache.get(sector)
            if buf[off] != F.END_ENTRY:
                buf[off] = F.END_ENTRY
                await self.vol.cache.mark_dirty(sector)
        return start

    async def _add_entry(self, d: _Dir, name: str, entry: F.DirEntry, node: _Node | None = None) -> _Node:
        """Create the entries for ``name`` in ``d`` (long name and alias as needed)."""
        check_long_name(name)
        form = plain_short(name)
        if form is not None and form.short not in d.shorts:
            entry.name, entry.nt_res = form.short, form.nt_res
            lfn = b""
        else:
            entry.name = alias(name, d.shorts, d.tails, self.codepage)
            entry.nt_res = 0
            lfn = _accel.impl.lfn_entries(name.encode("utf-16-le"), F.lfn_checksum(entry.name))
        n = len(lfn) // 32
        start = await self._take_slots(d, n + 1)
        for k in range(n):
            await self._write_slot(d, start + k, lfn[32 * k:32 * k + 32])
        d.used[start:start + n + 1] = b"\x01" * (n + 1)
        if node is None:
            node = _Node(name, entry, d, start + n, n)
        else:
            node.name, node.entry, node.parent, node.slot, node.nlfn = name, entry, d, start + n, n
        await self._write_slot(d, start + n, entry.emit())
        d.entries[fold(name)] = node
        d.shorts[entry.name] = node
        return node

    async def _free_slots(self, d: _Dir, node: _Node) -> None:
        """Mark ``node``'s slots in ``d`` (its long-name entries and its short entry) free (0xE5)."""
        for slot in range(node.slot - node.nlfn, node.slot + 1):
            sector, off = self._slot_pos(d, slot)
            buf = await self.vol.cache.get(sector)
            buf[off] = F.FREE_ENTRY
            await self.vol.cache.mark_dirty(sector)
            d.used[slot] = 0

    async def _remove_entry(self, node: _Node) -> None:
        """Mark ``node``'s entries free (0xE5) in its parent."""
        d = node.parent
        assert d is not None
        await self._free_slots(d, node)
        d.entries.pop(fold(node.name), None)
        d.shorts.pop(node.entry.name, None)

    def _chain_of(self, node: _Node) -> list[int]:
        if node.chain is None:
            c = node.entry.cluster
            if c == 0:
                node.chain = []
            else:
                if not 2 <= c <= self.vol.max_cluster:
                    raise BadChain(f"{self._path_of(node)!r} starts at cluster {c}, outside the volume")
                node.chain = self.vol.chain(c, repr(self._path_of(node)))
            if not node.is_dir and len(node.chain) * self.vol.cluster_size < node.entry.size:
                raise BadChain(
                    f"{self._path_of(node)!r} is {node.entry.size} bytes but its chain holds "
                    f"{len(node.chain)} clusters"
                )
        return node.chain

    def _new_entry(self, attr: int) -> F.DirEntry:
        date, tm, tenth = _now_fields(self._clock())
        return F.DirEntry(attr=attr, crt_time_tenth=tenth, crt_time=tm, crt_date=date, acc_date=date,
                          wrt_time=tm, wrt_date=date)

    def _touch(self, node: _Node) -> None:
        date, tm, _ = _now_fields(self._clock())
        node.entry.wrt_date, node.entry.wrt_time, node.entry.acc_date = date, tm, date
        node.entry.attr |= F.ATTR_ARCHIVE
        node.dirty = True

    def _stat(self, node: _Node) -> FileStat:
        e = node.entry
        attrs: dict[str, Any] = {
            "read_only": bool(e.attr & F.ATTR_READ_ONLY),
            "hidden": bool(e.attr & F.ATTR_HIDDEN),
            "system": bool(e.attr & F.ATTR_SYSTEM),
            "archive": bool(e.attr & F.ATTR_ARCHIVE),
            "short_name": short_to_text(e.name, self.codepage) if node.parent else "",
            "cluster": e.cluster,
        }
        return FileStat(node.name, 0 if node.is_dir else e.size, node.is_dir, _to_ns(e.wrt_date, e.wrt_time), attrs,
                        ctime_ns=_to_ns(e.crt_date, e.crt_time, e.crt_time_tenth) or None,
                        atime_ns=_to_ns(e.acc_date, 0) or None)

    # --- the FileSystem API --------------------------------------------------------------

    async def open(self, path: str, mode: str = "rb") -> FatFile:
        """Open a file; modes as :func:`open` in binary (``r w a x`` with ``+``)."""
        self._check_open()
        m = set(mode)
        if "t" in m or not m <= set("rwaxb+") or len(m & set("rwax")) != 1:
            raise ValueError(f"unsupported mode {mode!r} (binary modes only: r, w, a, x, with +)")
        writing = bool(m & set("wax+"))
        if writing:
            self._check_writable()
        try:
            d, name = await self._parent(path)  # one walk, whether the file exists or not
        except InvalidName:
            raise IsADirectory(path) from None  # the root
        key = fold(name)
        found = d.entries.get(key)
        if found is None:
            if "r" in m or key in d.invalid:
                raise self._missing(d, key, path)
            node = await self._add_entry(d, name, self._new_entry(F.ATTR_ARCHIVE))
            node.chain = []
        else:
            node = found
            if "x" in m:
                raise FileExists(path)
            if node.is_dir:
                raise IsADirectory(path)
            if writing and node.entry.attr & F.ATTR_READ_ONLY:
                raise PermissionError(f"{path!r} has the read-only attribute")
        f = FatFile(self, node, path, readable="r" in m or "+" in m, writable=writing, append="a" in m)
        node.opened += 1
        self._open_nodes.add(node)
        if "w" in m and node.entry.size:
            await f.truncate(0)
        return f

    async def replace(self, path: str, chunks: Iterable[bytes] | AsyncIterable[bytes],
                      size: int | None = None) -> int:
        """Write a whole file, atomically with respect to failure; the bytes written.

        The new content goes to newly allocated clusters; only once all of it is there
        does the directory entry switch to them (a new file's entry is created then),
        and the old chain is freed after the entry is on the disk (:meth:`flush`).  Any
        failure before (no space, the 4 GiB - 1 limit, the source failing) leaves the
        old file byte-identical and no new entry, and frees what was allocated.  With
        ``size`` given, both limits are checked before anything is read from ``chunks``
        (the new content needs its own clusters while the old one still holds its own).
        A crash leaves the old file or the new one, plus lost clusters ``fsck.fat -a``
        frees.  Open handles of a replaced file read the new content.
        """
        self._check_writable()
        d, name = await self._parent(path)
        check_long_name(name)
        key = fold(name)
        if key in d.invalid:
            raise BadDirectory(f"{path!r}: {d.invalid[key]}")
        existing = d.entries.get(key)
        old_chain: list[int] = []
        if existing is not None:
            if existing.is_dir:
                raise IsADirectory(path)
            if existing.entry.attr & F.ATTR_READ_ONLY:
                raise PermissionError(f"{path!r} has the read-only attribute")
            old_chain = list(self._chain_of(existing))  # a broken old chain fails here, before any work
        vol = self.vol
        cs = vol.cluster_size
        if size is not None:
            if size > MAX_FILE_SIZE:
                raise NoSpace(f"{path!r}: {size} bytes; a FAT file is at most 4 GiB - 1 ({MAX_FILE_SIZE}) bytes")
            need = -(-size // cs)
            if need > vol.free:
                raise NoSpace(f"{path!r}: {size} bytes need {need} clusters, {vol.free} are free (the new "
                              "content is written beside the old one, which is freed once the new one is complete)")
        chain: list[int] = []
        total = 0
        try:
            async for chunk in _each(chunks):
                if not chunk:
                    continue
                end = total + len(chunk)
                if end > MAX_FILE_SIZE:
                    raise NoSpace(f"{path!r}: more than 4 GiB - 1 ({MAX_FILE_SIZE}) bytes, a FAT file's limit")
                need = -(-end // cs)
                if need > len(chain):
                    chain.extend(vol.allocate(need - len(chain), after=chain[-1] if chain else 0))
                await vol.write_runs(chain, total, chunk, total)
                total = end
            if size is not None and total != size:
                raise FatError(f"{path!r}: the source gave {total} bytes where {size} were announced "
                               "(did it change while being copied?)")
            if existing is None:
                entry = self._new_entry(F.ATTR_ARCHIVE)
                entry.cluster, entry.size = (chain[0] if chain else 0), total
                node = await self._add_entry(d, name, entry)
                node.chain = chain
                return total
        except BaseException:
            vol.unallocate(chain)
            raise
        # The switch: one 32-byte entry, written after the FAT holds the new chain (sync's order).
        existing.entry.cluster, existing.entry.size = (chain[0] if chain else 0), total
        existing.chain = chain
        self._touch(existing)
        await self._store(existing)
        vol.release(old_chain)
        return total

    async def stat(self, path: str) -> FileStat:
        """Size, kind, modification time and attributes of ``path``."""
        self._check_open()
        return self._stat(await self._lookup(path))

    async def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        try:
            await self._lookup(path)
        except (FileNotFound, NotADirectory):
            return False
        return True

    async def listdir(self, path: str = "/") -> list[str]:
        """Names in the directory, in on-disk order."""
        return [s.name for s in await self.scandir(path)]

    async def scandir(self, path: str = "/") -> list[FileStat]:
        """Stats of the entries of the directory, in on-disk order.

        Entries whose names are invalid on disk are left out (:meth:`invalid_entries`
        says which).
        """
        self._check_open()
        node = await self._lookup(path)
        if not node.is_dir:
            raise NotADirectory(path)
        d = await self._dir(node)
        return [self._stat(n) for n in sorted(d.entries.values(), key=lambda n: n.slot)]

    async def invalid_entries(self, path: str = "/") -> list[str]:
        r"""What is wrong with each entry of the directory whose name is invalid on disk.

        Such entries (named ``.``, ``..``, holding ``/``, ``\\``, NUL or control
        characters...) are never listed nor followed; listing commands print these as
        warnings, ``check`` as problems.
        """
        self._check_open()
        node = await self._lookup(path)
        if not node.is_dir:
            raise NotADirectory(path)
        return list((await self._dir(node)).invalid.values())

    async def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Create a directory (with ``parents``, missing parents too)."""
        self._check_writable()
        if parents:
            parts = self._split(path)
            for i in range(1, len(parts)):
                sub = "/".join(parts[:i])
                try:
                    await self.mkdir(sub)
                except FileExists:
                    if not (await self._lookup(sub)).is_dir:
                        raise NotADirectory(sub) from None
        try:
            node = await self._lookup(path)
        except FileNotFound:
            pass
        else:
            if exist_ok and node.is_dir:
                return
            raise FileExists(path)
        d, name = await self._parent(path)
        check_long_name(name)
        vol = self.vol
        (c,) = vol.allocate(1)
        entry = self._new_entry(F.ATTR_DIRECTORY)
        entry.cluster = c
        # "." and ".." come first in every subdirectory (fatgen103 "FAT Directory
        # Structure"); ".." of a root child holds cluster 0, even on FAT32.
        dot = F.DirEntry(**{**entry.__dict__, "name": b".          "})
        parent_cluster = 0 if d.node.parent is None else d.cluster
        dotdot = F.DirEntry(**{**entry.__dict__, "name": b"..         ", "cluster": parent_cluster})
        body = bytearray(vol.cluster_size)
        body[0:32] = dot.emit()
        body[32:64] = dotdot.emit()
        first = vol.cluster_sector(c)
        await vol.cache.write_raw(first, bytes(body))  # data before the FAT and the entry
        for i in range(vol.spc):
            vol.cache.put(first + i, bytes(body[i * vol.bps:(i + 1) * vol.bps]))
        node = await self._add_entry(d, name, entry)
        node.chain = [c]
        new_dir = _Dir(node, c, [c], vol.cluster_size // 32, bytearray(vol.cluster_size // 32), 2)
        new_dir.used[0:2] = b"\x01\x01"
        self._dirs[c] = new_dir

    async def remove(self, path: str) -> None:
        """Delete a file."""
        self._check_writable()
        node = await self._lookup(path)
        if node.parent is None or node.is_dir:
            raise IsADirectory(path)
        if node.entry.attr & F.ATTR_READ_ONLY:
            raise PermissionError(f"{path!r} has the read-only attribute")
        chain = self._chain_of(node) if node.entry.cluster else []
        await self._remove_entry(node)
        self.vol.release(chain)
        node.chain = []
        node.entry.cluster = 0
        node.entry.size = 0
        node.parent = None  # open handles keep working on a detached, empty file

    async def rmdir(self, path: str) -> None:
        """Delete an empty directory."""
        self._check_writable()
        node = await self._lookup(path)
        if node.parent is None:
            raise InvalidName("cannot remove the root directory")
        if not node.is_dir:
            raise NotADirectory(path)
        d = await self._dir(node)
        if d.entries:
            raise DirectoryNotEmpty(path)
        await self._remove_entry(node)
        self._forget_dir(d)
        self.vol.release(d.chain)

    def _forget_dir(self, d: _Dir) -> None:
        self._dirs.pop(d.cluster, None)
        for c in d.chain:
            first = self.vol.cluster_sector(c)
            for s in range(first, first + self.vol.spc):
                self.vol.cache.drop(s)

    async def rename(self, source: str, dest: str) -> None:
        """Move ``source`` to ``dest``.

        An existing file at ``dest`` is replaced (as :func:`os.replace`), an existing
        empty directory too when ``source`` is one.
        """
        self._check_writable()
        node = await self._lookup(source)
        if node.parent is None:
            raise InvalidName("cannot move the root directory")
        d, name = await self._parent(dest)
        check_long_name(name)
        if node.is_dir:
            # A directory cannot move into itself or a descendant.
            p: _Node | None = d.node
            while p is not None:
                if p is node:
                    raise InvalidName(f"cannot move {source!r} into itself ({dest!r})")
                p = p.parent.node if p.parent else None
        existing = d.entries.get(fold(name))
        if existing is node:
            if existing.name == name:
                return
            existing = None  # a change of case only
        if existing is not None:
            if existing.is_dir != node.is_dir:
                raise (IsADirectory(dest) if existing.is_dir else NotADirectory(dest))
            if existing.is_dir:
                await self.rmdir(dest)
            else:
                await self.remove(dest)
        old_parent = node.parent
        assert old_parent is not None
        old = _Node(node.name, node.entry, node.parent, node.slot, node.nlfn)
        entry = F.DirEntry(**node.entry.__dict__)
        # The new entries reach the disk before the old ones are freed (a sync in
        # between unless both lie in one sector, which is written whole): a crash leaves
        # the old name, the new one, or both for one chain, which fsck.fat repairs
        # keeping the data; never neither.
        old_parent.entries.pop(fold(old.name), None)
        old_parent.shorts.pop(old.entry.name, None)
        try:
            await self._add_entry(d, name, entry, node)
        except BaseException:
            node.name, node.entry, node.parent = old.name, old.entry, old_parent
            node.slot, node.nlfn = old.slot, old.nlfn
            old_parent.entries[fold(old.name)] = node
            old_parent.shorts[old.entry.name] = node
            raise
        old_sectors = {self._slot_pos(old_parent, s)[0] for s in range(old.slot - old.nlfn, old.slot + 1)}
        new_sectors = {self._slot_pos(d, s)[0] for s in range(node.slot - node.nlfn, node.slot + 1)}
        if old_sectors != new_sectors and not self.vol.read_only:
            await self.flush()
        await self._free_slots(old_parent, old)
        if node.is_dir and old_parent is not d:
            sub = await self._dir(node)
            dotdot = sub.shorts.get(b"..         ")
            sector, off = self._slot_pos(sub, 1)
            buf = await self.vol.cache.get(sector)
            if bytes(buf[off:off + 11]) == b"..         ":
                new_parent = 0 if d.node.parent is None else d.cluster
                e = F.DirEntry.parse(buf, off)
                e.cluster = new_parent
                buf[off:off + 32] = e.emit()
                await self.vol.cache.mark_dirty(sector)
            del dotdot

    async def flush(self) -> None:
        """Write every change back, in order (data, FAT, directories), and flush the device."""
        self._check_open()
        for node in list(self._open_nodes):
            if node.dirty and node.parent is not None:
                await self._store(node)
        await self.vol.sync()

    # --- extras ----------------------------------------------------------------------------

    async def set_attributes(self, path: str, **flags: bool) -> None:
        """Set or clear ``read_only``, ``hidden``, ``system``, ``archive``."""
        self._check_writable()
        bits = {"read_only": F.ATTR_READ_ONLY, "hidden": F.ATTR_HIDDEN, "system": F.ATTR_SYSTEM,
                "archive": F.ATTR_ARCHIVE}
        node = await self._lookup(path)
        if node.parent is None:
            raise InvalidName("the root directory has no attributes")
        for k, v in flags.items():
            if k not in bits:
                raise ValueError(f"unknown attribute {k!r}; known: {', '.join(bits)}")
            node.entry.attr = node.entry.attr | bits[k] if v else node.entry.attr & ~bits[k]
        await self._store(node)

    async def set_mtime(self, path: str, mtime_ns: int) -> None:
        """Set the modification time (FAT keeps it to 2 seconds)."""
        self._check_writable()
        node = await self._lookup(path)
        if node.parent is None:
            raise InvalidName("the root directory has no timestamps")
        date, tm, _ = _now_fields(mtime_ns)
        node.entry.wrt_date, node.entry.wrt_time = date, tm
        await self._store(node)

    async def walk(self, path: str = "/") -> list[tuple[str, list[str], list[str]]]:
        """Like :func:`os.walk` (top-down); directories that loop are visited once."""
        out: list[tuple[str, list[str], list[str]]] = []
        seen: set[int] = set()
        todo = ["/" + "/".join(self._split(path))]
        while todo:
            top = todo.pop()
            node = await self._lookup(top)
            if node.entry.cluster in seen:
                raise BadDirectory(f"directory {top!r} appears twice in the tree (a loop)")
            seen.add(node.entry.cluster)
            dirs: list[str] = []
            files: list[str] = []
            for st in await self.scandir(top):
                (dirs if st.is_dir else files).append(st.name)
            out.append((top, dirs, files))
            todo.extend(f"{top.rstrip('/')}/{n}" for n in reversed(dirs))
        return out

    def statvfs(self) -> dict[str, int]:
        """Cluster size, total and free clusters, FAT type."""
        v = self.vol
        return {"cluster_size": v.cluster_size, "clusters": v.bs.cluster_count,
                "free_clusters": v.free + len(v.pending_free), "fat_type": v.type}

    async def check(self) -> list[str]:
        r"""Read every directory and chain; the problems found (empty when clean).

        Looks for what ``fsck.fat -n`` reports: the FAT's reserved entries (the media
        byte), FAT copies that differ, FSInfo's counts, entries whose names are invalid
        (``.``/``..`` out of place, ``/``, ``\\``, NUL or control characters, bytes after
        a long name's terminator), directories with a size, broken chains, clusters used
        twice, sizes larger or smaller than chains, and clusters marked used that no file
        owns.  Changes nothing.
        """
        problems: list[str] = await self._check_tables()
        owner: dict[int, str] = {}
        seen_dirs: set[int] = set()
        todo: list[_Node] = [self._root_node]
        if self.vol.type == F.FAT32:
            try:
                for c in self._chain_of(self._root_node):
                    owner[c] = "/"
            except CorruptFilesystem as exc:
                return [str(exc)]
        while todo:
            node = todo.pop()
            try:
                d = await self._dir(node)
            except CorruptFilesystem as exc:
                problems.append(str(exc))
                continue
            if d.cluster in seen_dirs:
                problems.append(f"{self._path_of(node)!r}: directory reached twice")
                continue
            seen_dirs.add(d.cluster)
            problems.extend(d.invalid.values())
            problems.extend(d.problems)
            problems.extend(await self._after_end(d))
            for child in d.entries.values():
                path = self._path_of(child)
                if child.is_dir and child.entry.size:
                    problems.append(f"{path!r} is a directory with a size ({child.entry.size} bytes; it must be 0)")
                try:
                    chain = self._chain_of(child)
                except CorruptFilesystem as exc:
                    problems.append(str(exc))
                    continue
                if not child.is_dir and len(chain) > -(-child.entry.size // self.vol.cluster_size):
                    problems.append(f"{path!r} is {child.entry.size} bytes but its chain holds {len(chain)} "
                                    "clusters (more than it needs)")
                for c in chain:
                    if c in owner:
                        problems.append(f"{path!r} and {owner[c]!r} share cluster {c}")
                        break
                    owner[c] = path
                if child.is_dir:
                    todo.append(child)
        vol = self.vol
        pending = set(vol.pending_free)
        lost = sum(1 for c in self._used_clusters() if c not in owner and c not in pending)
        if lost:
            problems.append(f"{lost} clusters are marked used but belong to no file")
        return problems

    async def _after_end(self, d: _Dir) -> list[str]:
        """Entries after a directory's end marker that are not empty (fsck.fat reads them as files)."""
        found = []
        for slot in range(d.end + 1, d.nslots):
            sector, off = self._slot_pos(d, slot)
            first = (await self.vol.cache.get(sector))[off]
            if first not in (F.END_ENTRY, F.FREE_ENTRY):
                found.append(slot)
        if not found:
            return []
        return [f"directory {self._path_of(d.node)!r}: {len(found)} entries after its end marker are not "
                f"empty (the first is entry {found[0]})"]

    async def _check_tables(self) -> list[str]:
        """Problems of the FAT's reserved entries, of its copies and of FSInfo."""
        vol, bs = self.vol, self.vol.bs
        problems: list[str] = []
        full = F.EOC_MARK[vol.type]
        media_entry = full & ~0xFF | bs.media
        if vol.get(0) != media_entry:
            problems.append(f"FAT entry 0 is 0x{vol.get(0):x}, not the media entry 0x{media_entry:x} "
                            f"(media byte 0x{bs.media:02x})")
        # Entry 1: end of chain, except for the "clean" and "no error" flags (FAT16 bits 15-14, FAT32 27-26).
        flags = {F.FAT12: 0, F.FAT16: 0xC000, F.FAT32: 0x0C000000}[vol.type]
        if vol.get(1) | flags != full:
            problems.append(f"FAT entry 1 is 0x{vol.get(1):x}, not an end-of-chain mark (0x{full:x})")
        fat_bytes = F.fat_bytes(vol.type, vol.max_cluster + 1)
        sectors = -(-fat_bytes // vol.bps)
        async def on_disk(k: int) -> bytes:
            data = await vol.block.read((bs.first_fat_sector + k * bs.fat_size) * vol.factor, sectors * vol.factor)
            return data[:fat_bytes]

        if len(vol.fat_copies) > 1:  # with mirroring off, only the active copy is kept up to date
            reference = await on_disk(0)
            for k in range(1, bs.num_fats):
                copy = await on_disk(k)
                if copy != reference:
                    first = next(i for i in range(fat_bytes) if copy[i] != reference[i])
                    problems.append(f"FAT copy {k + 1} differs from copy 1 (first at byte {first})")
        if vol.type == F.FAT32 and bs.fs_info_sector and not (vol.fsinfo_dirty or vol.fat_dirty):
            info = F.FSInfo.parse(await vol.block.read(bs.fs_info_sector * vol.factor, vol.factor))
            if info is None:
                problems.append(f"the FSInfo sector ({bs.fs_info_sector}) has no valid signatures")
            else:
                free = vol.free + len(vol.pending_free)
                if info.free_count != F.FSI_UNKNOWN and info.free_count != free:
                    problems.append(f"FSInfo says {info.free_count} free clusters; there are {free}")
                if info.next_free != F.FSI_UNKNOWN and not 2 <= info.next_free <= vol.max_cluster:
                    problems.append(f"FSInfo's next free cluster {info.next_free} is outside the volume")
        return problems

    def _used_clusters(self) -> Iterator[int]:
        v = self.vol
        bad = F.BAD[v.type]
        for c in range(2, v.max_cluster + 1):
            e = v.get(c)
            if e != 0 and e != bad:
                yield c


class FatFile:
    """An open file (a :class:`unik.devices.File`); also an async context manager."""

    def __init__(self, fs: FatFileSystem, node: _Node, path: str, *, readable: bool, writable: bool,
                 append: bool) -> None:
        self._fs = fs
        self._node = node
        self.name = path
        self.readable = readable
        self.writable = writable
        self._append = append
        self._pos = 0
        self.closed = False

    async def __aenter__(self) -> FatFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check(self, write: bool = False) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed file")
        self._fs._check_open()
        if write and not self.writable:
            raise PermissionError("file not open for writing")
        if not write and not self.readable:
            raise PermissionError("file not open for reading")

    @property
    def size(self) -> int:
        """Current length in bytes."""
        return self._node.entry.size

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes from the position (all the rest with ``n < 0``)."""
        self._check()
        node = self._node
        size = node.entry.size
        if self._pos >= size or n == 0:
            return b""
        length = size - self._pos if n < 0 else min(n, size - self._pos)
        chain = self._fs._chain_of(node)
        data = await self._fs.vol.read_runs(chain, self._pos, length)
        self._pos += length
        return data

    async def write(self, data: bytes) -> int:
        """Write at the position (at the end in append mode); returns ``len(data)``."""
        self._check(write=True)
        fs, vol, node = self._fs, self._fs.vol, self._node
        if not data:
            return 0
        written = len(data)
        size = node.entry.size
        if self._append:
            self._pos = size
        pos = self._pos
        if pos > size:  # a hole reads as zeros: write them
            data = bytes(pos - size) + bytes(data)
            pos = size
        end = pos + len(data)
        if end > MAX_FILE_SIZE:
            raise NoSpace("a FAT file is at most 4 GiB - 1 bytes")
        chain = fs._chain_of(node)
        need = (end + vol.cluster_size - 1) // vol.cluster_size
        if need > len(chain):
            new = vol.allocate(need - len(chain), after=chain[-1] if chain else 0)
            if not chain:
                node.entry.cluster = new[0]
            chain.extend(new)
        await vol.write_runs(chain, pos, data, size)
        if end > size:
            node.entry.size = end
        self._pos = end
        fs._touch(node)
        return written

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position (``whence`` 0 start, 1 current, 2 end); returns it."""
        if self.closed:
            raise ValueError("I/O operation on a closed file")
        base = {0: 0, 1: self._pos, 2: self._node.entry.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        """The position."""
        return self._pos

    async def truncate(self, size: int | None = None) -> int:
        """Cut (or extend with zeros) to ``size`` (default: the position)."""
        self._check(write=True)
        fs, vol, node = self._fs, self._fs.vol, self._node
        size = self._pos if size is None else size
        if size < 0:
            raise ValueError("negative size")
        cur = node.entry.size
        if size > cur:
            keep = self._pos, self._append
            self._append = False
            self._pos = cur
            await self.write(bytes(size - cur))
            self._pos, self._append = keep
            return size
        chain = fs._chain_of(node)
        need = (size + vol.cluster_size - 1) // vol.cluster_size
        if need < len(chain):
            drop = chain[need:]
            if need:
                vol.set(chain[need - 1], F.EOC_MARK[vol.type])
            else:
                node.entry.cluster = 0
            del chain[need:]
            vol.release(drop)
        node.entry.size = size
        fs._touch(node)
        return size

    async def flush(self) -> None:
        """Write the file's entry and everything before it to the device."""
        if self.closed:
            return
        await self._fs.flush()

    async def close(self) -> None:
        """Store the file's entry (flushing is :meth:`flush`'s job)."""
        if self.closed:
            return
        self.closed = True
        node = self._node
        node.opened -= 1
        if node.dirty and node.parent is not None and not self._fs._closed:
            await self._fs._store(node)
        if node.opened <= 0:
            self._fs._open_nodes.discard(node)
            if node.parent is None and node.chain:
                # Removed while open: its clusters belong to nobody now.
                self._fs.vol.release(node.chain)
                node.chain = []
                node.entry.cluster = 0

    async def readall(self) -> bytes:
        """Everything from the position to the end."""
        return await self.read(-1)
