"""The Internet checksum: the C module and its pure twin against a reference loop."""

from __future__ import annotations

import os
from types import ModuleType

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from unik import accel
from unik_tcpip import _checksum_py, checksum

try:
    import unik_tcpip._checksum as _checksum_c
except ImportError:  # pragma: no cover - the C module is built by `pip install -e`
    _checksum_c = None

IMPLS = [pytest.param(_checksum_py, id="pure")]
IMPLS.append(pytest.param(_checksum_c, id="c", marks=pytest.mark.skipif(
    _checksum_c is None, reason="the C module unik_tcpip._checksum is not built")))


def reference_sum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 4.1, word by word."""
    if len(data) % 2:
        data += b"\x00"
    total = (initial & 0xFFFF) + (initial >> 16 & 0xFFFF)
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


@pytest.mark.parametrize("impl", IMPLS)
def test_rfc1071_example(impl: ModuleType) -> None:
    # RFC 1071 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (with end-around carries).
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert impl.sum16(data) == 0xDDF2
    assert impl.checksum(data) == 0x220D
    assert impl.checksum(data + bytes.fromhex("220d")) == 0


@pytest.mark.parametrize("impl", IMPLS)
@given(data=st.binary(max_size=300), initial=st.integers(0, 0x1FFFE))
def test_matches_reference(impl: ModuleType, data: bytes, initial: int) -> None:
    assert impl.sum16(data, initial) == reference_sum(data, initial)
    assert impl.checksum(data, initial) == ~reference_sum(data, initial) & 0xFFFF


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", [0, 1, 2, 3, 15, 16, 17, 1499, 1500, 65536, 65537])
def test_sizes_and_buffer_types(impl: ModuleType, size: int) -> None:
    data = os.urandom(size)
    want = reference_sum(data)
    assert impl.sum16(data) == want
    assert impl.sum16(bytearray(data)) == want
    assert impl.sum16(memoryview(data)) == want
    if size > 4:
        assert impl.sum16(memoryview(data)[3:]) == reference_sum(data[3:])


@pytest.mark.parametrize("impl", IMPLS)
def test_all_ones_and_zeros(impl: ModuleType) -> None:
    assert impl.sum16(b"") == 0
    assert impl.sum16(bytes(100)) == 0
    assert impl.sum16(b"\xff" * 100) == 0xFFFF
    assert impl.checksum(b"\xff\xff") == 0


@pytest.mark.parametrize("impl", IMPLS)
@given(data=st.binary(min_size=2, max_size=200).filter(lambda d: len(d) % 2 == 0),
       index=st.integers(0, 99), new=st.integers(0, 0xFFFF))
def test_incremental_update_rfc1624(impl: ModuleType, data: bytes, index: int, new: int) -> None:
    index %= len(data) // 2
    old = int.from_bytes(data[2 * index:2 * index + 2], "big")
    changed = data[:2 * index] + new.to_bytes(2, "big") + data[2 * index + 2:]
    updated = impl.update16(impl.checksum(data), old, new)
    # All-zero data is the one case where eqn. 3 yields the other zero (RFC 1624 3).
    assume(any(changed))
    # Both representations of zero verify; RFC 1624 eqn. 3 may pick either.
    assert impl.checksum(changed + updated.to_bytes(2, "big")) == 0
    assert updated == impl.checksum(changed) or {updated, impl.checksum(changed)} == {0, 0xFFFF}


def test_switching_implementation() -> None:
    try:
        checksum.use_pure(True)
        assert checksum.implementation() == "pure"
        assert checksum.checksum(b"\x00\x01\xf2\x03") == _checksum_py.checksum(b"\x00\x01\xf2\x03")
        checksum.use_pure(False)
        # UNIK_PURE=1 keeps the twin even when the C module is built.
        assert checksum.implementation() == ("c" if _checksum_c is not None and not accel.pure() else "pure")
    finally:
        checksum.use_pure(False)


def test_pseudo_header_sum() -> None:
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    assert checksum.pseudo_header_sum(src, dst, 6, 40) == reference_sum(src + dst + b"\x00\x06\x00\x28")
