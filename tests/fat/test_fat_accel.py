"""The C accelerator and its pure-Python twin agree."""

from __future__ import annotations

import pytest
import unik_fat._accel_py as pure
from fat_support import fat_settings
from hypothesis import given
from hypothesis import strategies as st
from unik_fat import formats as F

c = pytest.importorskip("unik_fat._accel", reason="C accelerator not built")


@st.composite
def fats(draw: st.DrawFn) -> tuple[int, int, bytearray]:
    fat_type = draw(st.sampled_from([12, 16, 32]))
    max_cluster = draw(st.integers(2, 300))
    size = F.fat_bytes(fat_type, max_cluster + 1) + 4
    mark = F.EOC_MARK[fat_type]
    fat = bytearray(size)
    for n in range(2, max_cluster + 1):
        kind = draw(st.integers(0, 9))
        value = (0 if kind < 4 else mark if kind == 4 else F.BAD[fat_type] if kind == 5
                 else draw(st.integers(0, min(mark, max_cluster + 20))))
        F.set_entry(fat, fat_type, n, value)
    if fat_type == 32 and draw(st.booleans()):
        fat[4 * 2 + 3] |= 0xF0  # reserved high nibble set: still free if the rest is 0
    return fat_type, max_cluster, fat


@fat_settings()
@given(fats(), st.integers(0, 320), st.integers(0, 320))
def test_find_free_and_count(f: tuple[int, int, bytearray], a: int, b: int) -> None:
    t, m, fat = f
    lo, hi = min(a, m + 1), min(b, m + 1)
    assert c.find_free(fat, t, lo, hi) == pure.find_free(fat, t, lo, hi)
    assert c.count_free(fat, t, m) == pure.count_free(fat, t, m)


@fat_settings()
@given(fats(), st.integers(0, 320))
def test_walk_chain(f: tuple[int, int, bytearray], first: int) -> None:
    t, m, fat = f
    assert c.walk_chain(fat, t, first, m) == pure.walk_chain(fat, t, first, m)


@fat_settings()
@given(fats(), st.integers(0, 320), st.integers(0, 40))
def test_alloc(f: tuple[int, int, bytearray], hint: int, count: int) -> None:
    t, m, fat = f
    fat_c, fat_p = bytearray(fat), bytearray(fat)
    got_c = c.alloc(fat_c, t, hint, count, m)
    assert got_c == pure.alloc(fat_p, t, hint, count, m)
    assert fat_c == fat_p
    if got_c:
        chain, status = pure.walk_chain(fat_p, t, got_c[0], m)
        assert (chain, status) == (got_c, 0)


@fat_settings()
@given(st.text(min_size=1, max_size=255), st.integers(0, 255))
def test_lfn_entries(name: str, checksum: int) -> None:
    raw = name.encode("utf-16-le", "surrogatepass")[: 255 * 2]
    out = c.lfn_entries(raw, checksum)
    assert out == pure.lfn_entries(raw, checksum)
    # and they parse back to the name
    units: list[int] = []
    for k in range(len(out) // 32 - 1, -1, -1):
        ordv, chk, part = F.lfn_parts(out, 32 * k)
        assert chk == checksum and out[32 * k + 11] == F.ATTR_LONG_NAME
        assert ordv & 0x1F == len(out) // 32 - k
        units += part
    n = len(raw) // 2
    assert units[:n] == [int.from_bytes(raw[2 * i:2 * i + 2], "little") for i in range(n)]


def test_fat_buffer_too_small_is_refused() -> None:
    with pytest.raises(ValueError):
        c.walk_chain(bytearray(10), 32, 2, 1000)
    with pytest.raises(ValueError):
        c.alloc(bytearray(10), 16, 2, 1, 1000)


@fat_settings()
@given(st.lists(st.integers(2, 60), min_size=1, max_size=40), st.integers(0, 50), st.integers(0, 60))
def test_contiguous(clusters: list[int], start: int, end: int) -> None:
    if start >= len(clusters) or end < start:
        with pytest.raises(IndexError):
            c.contiguous(clusters, start, end)
        with pytest.raises(IndexError):
            pure.contiguous(clusters, start, end)
        return
    j = c.contiguous(clusters, start, end)
    assert j == pure.contiguous(clusters, start, end)
    assert all(clusters[k + 1] == clusters[k] + 1 for k in range(start, j))
