"""TCP segments (RFC 9293 3.1) and their options (RFC 9293 3.2, RFC 7323, RFC 2018)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .. import checksum as cs
from .. import fastpath
from ..errors import Malformed

if TYPE_CHECKING:
    from .._fastpath_py import Tcp4Fields
    from ._tcpflags import TcpFlags as TcpFlags  # served by __getattr__

MIN_HEADER_LEN = 20
_HDR = struct.Struct("!HHIIBBHHH")
_TS = struct.Struct("!BBII")
_NOP_TS = struct.Struct("!HHII")  # NOP NOP | kind len, then TSval, TSecr
_NOP_TS_BYTES = struct.Struct("!BBBBII")

OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8
# Fixed lengths of the options the stack understands (RFC 9293 3.2, RFC 7323 2.2/3.2, RFC 2018 2).
_OPT_LEN = {OPT_MSS: 4, OPT_WSCALE: 3, OPT_SACK_PERMITTED: 2, OPT_TIMESTAMP: 10}


FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


class TcpOptions:
    """The options of one segment; ``None``/empty where absent."""

    __slots__ = ("mss", "sack_blocks", "sack_permitted", "timestamp", "wscale")

    def __init__(self, mss: int | None = None, wscale: int | None = None, sack_permitted: bool = False,
                 sack_blocks: tuple[tuple[int, int], ...] = (),
                 timestamp: tuple[int, int] | None = None) -> None:
        self.mss, self.wscale, self.sack_permitted = mss, wscale, sack_permitted
        self.sack_blocks, self.timestamp = sack_blocks, timestamp

    def __repr__(self) -> str:
        return (f"TcpOptions(mss={self.mss}, wscale={self.wscale}, sack_permitted={self.sack_permitted}, "
                f"sack_blocks={self.sack_blocks}, timestamp={self.timestamp})")

    @classmethod
    def parse(cls, opts: memoryview) -> TcpOptions:
        """Parse the option bytes; a known option with a wrong length is malformed."""
        if len(opts) == 12 and opts[0] == OPT_NOP and opts[1] == OPT_NOP and opts[2] == OPT_TIMESTAMP \
                and opts[3] == 10:
            # Fast path: the NOP, NOP, Timestamps layout of RFC 7323 appendix A, on nearly
            # every segment of a connection with timestamps.
            _nop, _nop2, tsval, tsecr = _NOP_TS.unpack_from(opts)
            return cls(timestamp=(tsval, tsecr))
        out = cls()
        i, n = 0, len(opts)
        while i < n:
            kind = opts[i]
            if kind == OPT_EOL:
                break
            if kind == OPT_NOP:
                i += 1
                continue
            if i + 1 >= n:
                raise Malformed("tcp.bad_option", f"option {kind} without length")
            length = opts[i + 1]
            if length < 2 or i + length > n:
                raise Malformed("tcp.bad_option", f"option {kind} length {length}")
            want = _OPT_LEN.get(kind)
            if want is not None and length != want:
                raise Malformed("tcp.bad_option", f"option {kind} length {length}, expected {want}")
            if kind == OPT_MSS:
                out.mss = (opts[i + 2] << 8) | opts[i + 3]
            elif kind == OPT_WSCALE:
                out.wscale = opts[i + 2]
            elif kind == OPT_SACK_PERMITTED:
                out.sack_permitted = True
            elif kind == OPT_TIMESTAMP:
                _k, _l, tsval, tsecr = _TS.unpack_from(opts, i)
                out.timestamp = (tsval, tsecr)
            elif kind == OPT_SACK:
                if (length - 2) % 8 or length == 2:
                    raise Malformed("tcp.bad_option", f"SACK length {length}")
                blocks = struct.unpack_from(f"!{(length - 2) // 4}I", opts, i + 2)
                out.sack_blocks = tuple(zip(blocks[0::2], blocks[1::2], strict=True))
            i += length
        return out

    def to_bytes(self) -> bytes:
        """The options, NOP-aligned as RFC 7323 Appendix A and RFC 2018 suggest."""
        if self.timestamp is not None and self.mss is None and self.wscale is None \
                and not self.sack_permitted and not self.sack_blocks:
            return _NOP_TS_BYTES.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, self.timestamp[0] & 0xFFFFFFFF,
                                      self.timestamp[1] & 0xFFFFFFFF)
        out = bytearray()
        if self.mss is not None:
            out += struct.pack("!BBH", OPT_MSS, 4, self.mss)
        if self.sack_permitted and self.timestamp is None:
            out += bytes((OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2))
        if self.timestamp is not None:
            if self.sack_permitted:
                out += bytes((OPT_SACK_PERMITTED, 2))
            else:
                out += bytes((OPT_NOP, OPT_NOP))
            out += _TS.pack(OPT_TIMESTAMP, 10, self.timestamp[0] & 0xFFFFFFFF, self.timestamp[1] & 0xFFFFFFFF)
        if self.wscale is not None:
            out += bytes((OPT_NOP, OPT_WSCALE, 3, self.wscale))
        if self.sack_blocks:
            blocks = self.sack_blocks[:4]
            out += bytes((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks)))
            for left, right in blocks:
                out += struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF)
        if len(out) > 40:
            raise ValueError("TCP options longer than 40 bytes")
        return bytes(out)


class TcpSegment:
    """A view of a TCP segment."""

    __slots__ = ("ack", "buf", "dst_port", "flags", "header_len", "options", "seq", "src_port", "urgent",
                 "window")

    def __init__(self, buf: memoryview, src_port: int, dst_port: int, seq: int, ack: int, header_len: int,
                 flags: int, window: int, urgent: int, options: TcpOptions) -> None:
        self.buf, self.src_port, self.dst_port, self.seq, self.ack = buf, src_port, dst_port, seq, ack
        self.header_len, self.flags, self.window, self.urgent = header_len, flags, window, urgent
        self.options = options

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, src: bytes, dst: bytes,
              verify_checksum: bool = True) -> TcpSegment:
        """Parse a segment carried from ``src`` to ``dst`` (for the pseudo-header)."""
        buf = memoryview(data)
        if len(buf) < MIN_HEADER_LEN:
            raise Malformed("tcp.truncated", f"{len(buf)} bytes")
        sport, dport, seq, ack, off, flags, window, _sum, urgent = _HDR.unpack_from(buf)
        header_len = (off >> 4) * 4
        if header_len < MIN_HEADER_LEN or header_len > len(buf):
            raise Malformed("tcp.bad_header_len", f"{header_len} (have {len(buf)})")
        if verify_checksum and cs.checksum(buf, cs.pseudo_header_sum(src, dst, 6, len(buf))) != 0:
            raise Malformed("tcp.bad_checksum")
        if sport == 0 or dport == 0:
            raise Malformed("tcp.zero_port")
        if flags & SYN and flags & (FIN | RST):
            from ._tcpflags import TcpFlags

            raise Malformed("tcp.bad_flags", f"{TcpFlags(flags)!r}")
        options = TcpOptions.parse(buf[MIN_HEADER_LEN:header_len]) if header_len > MIN_HEADER_LEN \
            else _NO_OPTIONS
        return cls(buf, sport, dport, seq, ack, header_len, flags, window, urgent, options)

    @property
    def payload(self) -> memoryview:
        """The data."""
        return self.buf[self.header_len:]

    @property
    def seg_len(self) -> int:
        """SEG.LEN: data length plus one for SYN and one for FIN (RFC 9293 3.4)."""
        return len(self.buf) - self.header_len + (self.flags & SYN and 1) + (self.flags & FIN and 1)

    @staticmethod
    def build(src: bytes, dst: bytes, src_port: int, dst_port: int, seq: int, ack: int, flags: int,
              window: int, options: bytes = b"", payload: bytes | bytearray | memoryview = b"",
              headroom: int = 0, partial_checksum: bool = False) -> bytearray:
        """A segment with its checksum, after ``headroom`` zero bytes (for lower headers).

        With ``partial_checksum`` the checksum field holds only the pseudo-header sum, for a
        NIC to complete (checksum and segmentation offload, as a virtio-net header asks).
        """
        return fastpath.tcp_segment(src, dst, src_port, dst_port, seq, ack, flags, window, -1, 0, options,
                                    payload, headroom, partial_checksum)

    @classmethod
    def from_fast(cls, frame: bytes | bytearray | memoryview, fields: Tcp4Fields) -> TcpSegment:
        """The segment that :func:`unik_tcpip.fastpath.tcp4_parse` found in ``frame``."""
        (_mac, _src, _dst, sport, dport, seq, ack, flags, window, urgent, start, end, hlen, tsval,
         tsecr) = fields
        options = _NO_OPTIONS if tsval < 0 else TcpOptions(timestamp=(tsval, tsecr))
        return cls(memoryview(frame)[start:end], sport, dport, seq, ack, hlen, flags, window, urgent, options)


def sack_option(blocks: tuple[tuple[int, int], ...]) -> bytes:
    """NOP, NOP and a SACK option (RFC 2018 3) with up to four blocks."""
    blocks = blocks[:4]
    return bytes((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks))) + b"".join(
        struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF) for left, right in blocks)


_NO_OPTIONS = TcpOptions()


def __getattr__(name: str) -> object:
    """:class:`TcpFlags`, defined on first use."""
    # Creating an IntFlag class costs a few ms as a VM boots under emulation, and the stack
    # itself uses the plain constants above (a sealed process gets it from stack's preload).
    if name == "TcpFlags":
        from ._tcpflags import TcpFlags

        return TcpFlags
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
