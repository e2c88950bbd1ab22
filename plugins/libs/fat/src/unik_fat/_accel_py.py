"""Pure-Python twin of the C accelerator ``unik_fat._accel`` (same functions, same results).

``fat`` is the whole FAT as a ``bytearray``; ``fat_type`` is 12, 16 or 32; clusters
are numbered 2..``max_cluster``.  Chains are walked for at most ``max_cluster - 1``
steps, so a loop is reported, never followed forever.
"""

from __future__ import annotations

import itertools

#: walk_chain statuses
OK, LOOP, OUT_OF_RANGE, FREE_IN_CHAIN, BAD_IN_CHAIN = 0, 1, 2, 3, 4

_EOC = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}
_BAD = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}
_MARK = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}


def get(fat: bytearray, fat_type: int, n: int) -> int:
    """Entry ``n``."""
    if fat_type == 16:
        return fat[2 * n] | fat[2 * n + 1] << 8
    if fat_type == 32:
        return (fat[4 * n] | fat[4 * n + 1] << 8 | fat[4 * n + 2] << 16 | fat[4 * n + 3] << 24) & 0x0FFFFFFF
    off = n + (n >> 1)
    v = fat[off] | fat[off + 1] << 8
    return v >> 4 if n & 1 else v & 0xFFF


def put(fat: bytearray, fat_type: int, n: int, value: int) -> None:
    """Set entry ``n`` (FAT32's reserved top nibble is kept)."""
    if fat_type == 16:
        fat[2 * n] = value & 0xFF
        fat[2 * n + 1] = value >> 8 & 0xFF
    elif fat_type == 32:
        fat[4 * n] = value & 0xFF
        fat[4 * n + 1] = value >> 8 & 0xFF
        fat[4 * n + 2] = value >> 16 & 0xFF
        fat[4 * n + 3] = (fat[4 * n + 3] & 0xF0) | (value >> 24 & 0x0F)
    else:
        off = n + (n >> 1)
        if n & 1:
            fat[off] = (fat[off] & 0x0F) | (value << 4 & 0xF0)
            fat[off + 1] = value >> 4 & 0xFF
        else:
            fat[off] = value & 0xFF
            fat[off + 1] = (fat[off + 1] & 0xF0) | (value >> 8 & 0x0F)


def find_free(fat: bytearray, fat_type: int, start: int, end: int) -> int:
    """The first free cluster in ``[start, end)``, or 0."""
    if fat_type == 32:
        for n in range(start, end):
            if fat[4 * n] == 0 and fat[4 * n + 1] == 0 and fat[4 * n + 2] == 0 and fat[4 * n + 3] & 0x0F == 0:
                return n
        return 0
    if fat_type == 16:
        pos = 2 * start
        stop = 2 * end
        while pos < stop:
            i = fat.find(b"\x00\x00", pos, stop)
            if i < 0:
                return 0
            if i & 1 == 0:
                return i // 2
            pos = i + 1
        return 0
    for n in range(start, end):
        if get(fat, 12, n) == 0:
            return n
    return 0


def count_free(fat: bytearray, fat_type: int, max_cluster: int) -> int:
    """Free clusters among 2..``max_cluster``."""
    return sum(1 for n in range(2, max_cluster + 1) if get(fat, fat_type, n) == 0)


def walk_chain(fat: bytearray, fat_type: int, first: int, max_cluster: int) -> tuple[list[int], int]:
    """``(clusters, status)``: the chain from ``first`` until an end-of-chain mark.

    On a problem the clusters walked so far come back with a non-zero status.
    """
    eoc, bad = _EOC[fat_type], _BAD[fat_type]
    out: list[int] = []
    n = first
    limit = max_cluster - 1
    while True:
        if n < 2 or n > max_cluster:
            return out, OUT_OF_RANGE
        if len(out) >= limit:
            return out, LOOP
        out.append(n)
        nxt = get(fat, fat_type, n)
        if nxt >= eoc:
            return out, OK
        if nxt == 0:
            return out, FREE_IN_CHAIN
        if nxt == bad:
            return out, BAD_IN_CHAIN
        n = nxt


def alloc(fat: bytearray, fat_type: int, hint: int, count: int, max_cluster: int) -> list[int]:
    """Take and link ``count`` free clusters into a chain, searching from ``hint``.

    The search wraps around; the last cluster gets an end-of-chain mark.  ``[]`` (and
    no change) if there are not enough.
    """
    found: list[int] = []
    if hint < 2 or hint > max_cluster:
        hint = 2
    for lo, hi in ((hint, max_cluster + 1), (2, hint)):
        n = lo
        while len(found) < count and n < hi:
            n = find_free(fat, fat_type, n, hi)
            if n == 0:
                break
            found.append(n)
            n += 1
        if len(found) == count:
            break
    if len(found) < count:
        return []
    for a, b in itertools.pairwise(found):
        put(fat, fat_type, a, b)
    if found:
        put(fat, fat_type, found[-1], _MARK[fat_type])
    return found


def contiguous(clusters: list[int], start: int, end: int) -> int:
    """The last index ``j <= end`` such that ``clusters[start..j]`` are consecutive numbers."""
    if start < 0 or start >= len(clusters) or end < start:
        raise IndexError("contiguous: start out of range")
    end = min(end, len(clusters) - 1)
    j = start
    while j < end and clusters[j + 1] == clusters[j] + 1:
        j += 1
    return j


def lfn_entries(name_utf16: bytes, checksum: int) -> bytes:
    """The long-name entries for a name (UTF-16-LE bytes), in on-disk order (last first).

    fatgen103 "FAT Long Directory Entries": 13 code units per entry, a 0x0000
    terminator when there is room, then 0xFFFF padding; LDIR_Attr 0x0F, LDIR_Type 0,
    LDIR_FstClusLO 0, LDIR_Ord counting from 1 with 0x40 on the last.
    """
    units = len(name_utf16) // 2
    count = (units + 12) // 13
    padded = bytearray(name_utf16)
    if units % 13:
        padded += b"\x00\x00"
        padded += b"\xff\xff" * (count * 13 - units - 1)
    out = bytearray()
    for seq in range(count, 0, -1):
        chunk = padded[(seq - 1) * 26:seq * 26]
        e = bytearray(32)
        e[0] = seq | (0x40 if seq == count else 0)
        e[1:11] = chunk[0:10]
        e[11] = 0x0F
        e[13] = checksum
        e[14:26] = chunk[10:22]
        e[28:32] = chunk[22:26]
        out += e
    return bytes(out)
