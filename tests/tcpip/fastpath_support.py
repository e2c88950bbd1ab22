"""What the C/pure twin suites of unik-lib-tcpip share: the twins as parameters, and built frames.

``c_and_pure("unik_tcpip._fastpath", _fastpath_py)`` gives the C module (``None`` in a
build without it), a mark that skips a test needing it, and both as ``impl`` parameters.
``tcp_frame`` builds a plain TCP frame with a twin's own builders, IPv4 or IPv6 by the
length of the addresses, for the parsers to read back.
"""

from __future__ import annotations

import importlib
import random
from types import ModuleType
from typing import Any

import pytest
from unik_tcpip.ipv6 import wire as wire6

MACS = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
#: The fields a fast-path record and a fully parsed segment must agree on.
SEGMENT_FIELDS = ("src_port", "dst_port", "seq", "ack", "flags", "window", "urgent", "header_len")


def c_and_pure(c_name: str, pure: ModuleType) -> tuple[Any, pytest.MarkDecorator, list[Any]]:
    """The C twin named ``c_name`` (or ``None``), a skip mark without it, and both as parameters."""
    try:
        c_module: ModuleType | None = importlib.import_module(c_name)
    except ImportError:  # pragma: no cover - a build without the C extension
        c_module = None
    needs_c = pytest.mark.skipif(c_module is None, reason=f"needs the C extension {c_name} "
                                                          "(pip install -e plugins/libs/tcpip builds it)")
    return c_module, needs_c, [pytest.param(c_module, id="c", marks=needs_c), pytest.param(pure, id="pure")]


def tcp_frame(impl: Any, rng: random.Random, src: bytes, dst: bytes, tsval: int = -1, options: bytes = b"",
              payload: bytes = b"", flags: int = 0x18) -> bytearray:
    """An Ethernet frame of one TCP segment with random ports, numbers and window, built by ``impl``."""
    headroom = 34 if len(src) == 4 else 54
    seg: bytearray = impl.tcp_segment(src, dst, rng.randrange(1, 65536), rng.randrange(1, 65536),
                                      rng.randrange(2**32), rng.randrange(2**32), flags, rng.randrange(65536), tsval,
                                      rng.randrange(2**32), options, payload, headroom, False)
    if len(src) == 4:
        impl.ipv4_header(seg, 14, src, dst, 6, len(seg) - headroom, rng.randrange(65536), 64, True)
        seg[0:14] = MACS + b"\x08\x00"
    else:
        wire6.emit(seg, 14, src, dst, wire6.TCP, len(seg) - headroom)
        seg[0:14] = MACS + b"\x86\xdd"
    return seg


def assert_same_segment(fast: Any, seg: Any) -> None:
    """A segment read from a fast-path record equals the full parser's, field by field."""
    for name in SEGMENT_FIELDS:
        assert getattr(fast, name) == getattr(seg, name), name
