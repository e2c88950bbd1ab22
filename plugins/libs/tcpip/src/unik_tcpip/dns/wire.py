r"""DNS messages (RFC 1035 4, EDNS0 per RFC 6891): queries built, answers parsed strictly.

Names are kept as their uncompressed wire form in ASCII lower case
(``b"\x03www\x07example\x03com\x00"``), so comparing two names is comparing bytes
(RFC 4343: DNS names compare case-insensitively).  Every check the parser makes
raises :class:`unik_tcpip.errors.Malformed` with a counter name (``dns.pointer_loop``,
``dns.name_too_long``...): the resolver counts it in the stack's ``stats`` and drops
the message.  Compression pointers must point strictly backwards, before every
position already read for the same name, so no input makes the parser loop.
"""

from __future__ import annotations

import importlib
import socket
import struct

from ..errors import Malformed

# RFC 1035 3.2.2 / RFC 3596 / RFC 6891: the types the resolver reads.
A, NS, CNAME, SOA, AAAA, OPT = 1, 2, 5, 6, 28, 41
CLASS_IN = 1
# RFC 1035 4.1.1 RCODEs.
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = range(6)
# Header flags.
QR, TC, RD, RA = 0x8000, 0x0200, 0x0100, 0x0080
OPCODE_MASK = 0x7800

#: RFC 1035 2.3.4: a name is at most 255 octets on the wire, a label at most 63.
MAX_NAME = 255
MAX_LABEL = 63
#: The EDNS0 UDP payload size advertised (DNS flag day 2020: no IP fragmentation).
EDNS_PAYLOAD = 1232
#: RFC 2181 8: TTLs are 31-bit; a value with the top bit set counts as zero.
MAX_TTL = 2**31 - 1

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_QTAIL = struct.Struct("!HH")
_SOA_TAIL = struct.Struct("!IIIII")

ROOT = b"\x00"
#: The IDNA codec, named through variables: a VM image's import scan follows literal
#: ``import_module("...")`` and ``.encode("...")`` calls, and this codec would bring
#: unicodedata (1 MB) into every image that has the stack.  Images leave it out; there,
#: :func:`encode_name` refuses a non-ASCII name and asks for its ASCII (``xn--``) form.
_IDNA, _IDNA_MODULE = "idna", "encodings.idna"


class InvalidName(ValueError):
    """A name an application asked for cannot be a DNS name (empty label, too long...)."""


class Question:
    """One entry of the question section."""

    __slots__ = ("name", "qclass", "qtype")

    def __init__(self, name: bytes, qtype: int, qclass: int = CLASS_IN) -> None:
        self.name, self.qtype, self.qclass = name, qtype, qclass

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Question) and (self.name, self.qtype, self.qclass) == (
            other.name, other.qtype, other.qclass)

    def __hash__(self) -> int:
        return hash((self.name, self.qtype, self.qclass))

    def __repr__(self) -> str:
        return f"Question({name_text(self.name)!r}, {self.qtype}, {self.qclass})"


class Soa:
    """The parts of an SOA record's data that negative caching needs (RFC 2308 3)."""

    __slots__ = ("minimum", "mname")

    def __init__(self, mname: bytes, minimum: int) -> None:
        self.mname, self.minimum = mname, minimum


class Record:
    """A resource record: ``data`` is an address text (A, AAAA), a name (CNAME, NS), :class:`Soa`, or bytes."""

    __slots__ = ("data", "name", "rclass", "rtype", "ttl")

    def __init__(self, name: bytes, rtype: int, rclass: int, ttl: int, data: str | bytes | Soa) -> None:
        self.name, self.rtype, self.rclass, self.ttl, self.data = name, rtype, rclass, ttl, data

    def __repr__(self) -> str:
        return f"Record({name_text(self.name)!r}, type={self.rtype}, ttl={self.ttl}, {self.data!r})"


class Message:
    """A parsed DNS message."""

    __slots__ = ("additional", "answers", "authority", "edns_payload", "flags", "id", "questions", "rcode")

    def __init__(self, id: int, flags: int, rcode: int, questions: list[Question], answers: list[Record],
                 authority: list[Record], additional: list[Record], edns_payload: int | None) -> None:
        self.id, self.flags, self.rcode = id, flags, rcode
        self.questions, self.answers, self.authority, self.additional = questions, answers, authority, additional
        self.edns_payload = edns_payload

    @property
    def truncated(self) -> bool:
        """TC: the answer did not fit; ask again over TCP (RFC 7766)."""
        return bool(self.flags & TC)


# -- names ------------------------------------------------------------------------


def encode_name(text: str) -> bytes:
    """``"www.example.com"`` (a trailing dot allowed) as its lower-case wire form.

    A non-ASCII name goes through IDNA (Python's ``idna`` codec); an empty label, a label
    over 63 octets or a name over 255 raise :class:`InvalidName`.
    """
    if not text.isascii():
        try:
            importlib.import_module(_IDNA_MODULE)
        except ImportError:
            raise InvalidName(f"{text!r}: a non-ASCII name needs Python's IDNA codec (encodings.idna and "
                              "unicodedata), which this image leaves out: give its ASCII form (xn--...)") from None
        try:
            text = text.encode(_IDNA).decode("ascii")
        except UnicodeError as exc:
            raise InvalidName(f"{text!r} is not a valid internationalised domain name ({exc})") from None
    if text in (".", ""):
        return ROOT
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    out = bytearray()
    for label in labels:
        raw = label.encode("ascii").lower()
        if not raw:
            raise InvalidName(f"{text!r} has an empty label (two dots in a row, or a leading dot)")
        if len(raw) > MAX_LABEL:
            raise InvalidName(f"{text!r}: the label {label[:20]!r}... is {len(raw)} octets (at most {MAX_LABEL})")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise InvalidName(f"{text[:40]!r}... is {len(out)} octets in DNS form (at most {MAX_NAME})")
    return bytes(out)


def name_text(wire: bytes) -> str:
    r"""A wire-form name as text, without the trailing dot; other bytes than ``[-0-9A-Za-z_]`` as ``\DDD``."""
    labels = []
    i = 0
    while i < len(wire) and wire[i]:
        n = wire[i]
        label = wire[i + 1:i + 1 + n]
        if all(c == 45 or c == 95 or 48 <= c <= 57 or 97 <= c <= 122 or 65 <= c <= 90 for c in label):
            labels.append(label.decode("ascii"))
        else:
            labels.append("".join(chr(c) if 33 <= c < 127 and c not in (46, 92) else f"\\{c:03d}" for c in label))
        i += 1 + n
    return ".".join(labels)


def read_name(buf: bytes | memoryview, offset: int) -> tuple[bytes, int]:
    """The name at ``offset`` (following compression pointers) and the offset after it.

    Lower-cased wire form.  A pointer must point before the pointer itself and before
    every position already read for this name (RFC 1035 4.1.4 says "a prior
    occurrence"): that rules out loops by construction.
    """
    n = len(buf)
    out = bytearray()
    pos = offset
    lowest = offset
    end = -1
    while True:
        if pos >= n:
            raise Malformed("dns.truncated", "a name runs past the end")
        length = buf[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                raise Malformed("dns.truncated", "a compression pointer runs past the end")
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            if end < 0:
                end = pos + 2
            if target > pos:
                raise Malformed("dns.pointer_forward", f"a pointer at {pos} to {target}, further on")
            if target >= lowest:
                raise Malformed("dns.pointer_loop", f"a pointer at {pos} to {target}, into the same name")
            pos = lowest = target
            continue
        if kind:
            raise Malformed("dns.bad_label_type", f"label type {kind >> 6:#x} at {pos}")
        if length == 0:
            out.append(0)
            if len(out) > MAX_NAME:
                raise Malformed("dns.name_too_long", f"{len(out)} octets")
            return bytes(out).lower(), (pos + 1 if end < 0 else end)
        if pos + 1 + length > n:
            raise Malformed("dns.truncated", "a label runs past the end")
        out += buf[pos:pos + 1 + length]
        if len(out) >= MAX_NAME:  # even the root label would not fit
            raise Malformed("dns.name_too_long", f"more than {MAX_NAME} octets")
        pos += 1 + length


# -- queries ----------------------------------------------------------------------


def build_query(ident: int, name: bytes, qtype: int, edns: bool = True) -> bytes:
    """A recursive query (RD) for ``name``/``qtype``, with an EDNS0 OPT record unless ``edns`` is off."""
    header = _HEADER.pack(ident, RD, 1, 0, 0, 1 if edns else 0)
    query = header + name + _QTAIL.pack(qtype, CLASS_IN)
    if edns:
        # RFC 6891 6.1.2: owner root, CLASS = payload size, TTL = extended RCODE/version/flags.
        query += ROOT + _RR.pack(OPT, EDNS_PAYLOAD, 0, 0)
    return query


# -- messages ---------------------------------------------------------------------


def _read_rdata(buf: bytes | memoryview, rtype: int, start: int, length: int) -> str | bytes | Soa:
    end = start + length
    if rtype == A:
        if length != 4:
            raise Malformed("dns.bad_rdata", f"an A record of {length} octets")
        b = buf[start:end]
        return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"
    if rtype == AAAA:
        if length != 16:
            raise Malformed("dns.bad_rdata", f"an AAAA record of {length} octets")
        return socket.inet_ntop(socket.AF_INET6, bytes(buf[start:end]))
    if rtype in (CNAME, NS):
        target, after = read_name(buf[:end], start)
        if after != end:
            raise Malformed("dns.bad_rdata", "a name that does not fill its record")
        return target
    if rtype == SOA:
        mname, after = read_name(buf[:end], start)
        _rname, after = read_name(buf[:end], after)
        if after + _SOA_TAIL.size != end:
            raise Malformed("dns.bad_rdata", "an SOA record of the wrong length")
        minimum = _SOA_TAIL.unpack_from(buf, after)[4]
        return Soa(mname, minimum if minimum <= MAX_TTL else 0)
    return bytes(buf[start:end])


def parse_message(data: bytes | memoryview) -> Message:
    """Parse a whole message (UDP payload, or a TCP message without its length prefix).

    Bytes left after the last record are refused (``dns.trailing_data``), as are a second
    OPT record or one outside the additional section (``dns.bad_opt``).
    """
    n = len(data)
    if n < _HEADER.size:
        raise Malformed("dns.truncated", f"{n} octets, less than a header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    pos = _HEADER.size
    questions = []
    for _ in range(qdcount):
        qname, pos = read_name(data, pos)
        if pos + 4 > n:
            raise Malformed("dns.truncated", "a question runs past the end")
        qtype, qclass = _QTAIL.unpack_from(data, pos)
        pos += 4
        questions.append(Question(qname, qtype, qclass))
    sections: list[list[Record]] = [[], [], []]
    rcode = flags & 0xF
    edns_payload: int | None = None
    for index, count in enumerate((ancount, nscount, arcount)):
        section = sections[index]
        for _ in range(count):
            owner, pos = read_name(data, pos)
            if pos + _RR.size > n:
                raise Malformed("dns.truncated", "a record header runs past the end")
            rtype, rclass, ttl, rdlength = _RR.unpack_from(data, pos)
            pos += _RR.size
            if pos + rdlength > n:
                raise Malformed("dns.truncated", "record data runs past the end")
            if rtype == OPT:
                if index != 2 or edns_payload is not None or owner != ROOT:
                    raise Malformed("dns.bad_opt", "an OPT record out of place, repeated, or not owned by the root")
                edns_payload = rclass
                rcode |= (ttl >> 24) << 4  # RFC 6891 6.1.3: the upper 8 bits of the extended RCODE
                pos += rdlength
                continue
            rdata = _read_rdata(data, rtype, pos, rdlength)
            pos += rdlength
            section.append(Record(owner, rtype, rclass, ttl if ttl <= MAX_TTL else 0, rdata))
    if pos != n:
        raise Malformed("dns.trailing_data", f"{n - pos} octets after the last record")
    return Message(ident, flags, rcode, questions, sections[0], sections[1], sections[2], edns_payload)


def check_response(message: Message, ident: int, question: Question) -> None:
    """RFC 5452 9.1: accept only a response to our query: its ID and the same one question.

    Raises ``dns.not_response``, ``dns.wrong_id`` or ``dns.question_mismatch``.
    """
    if not message.flags & QR or message.flags & OPCODE_MASK:
        raise Malformed("dns.not_response", "not a standard query's response (QR clear or another opcode)")
    if message.id != ident:
        raise Malformed("dns.wrong_id", f"ID {message.id}, expected {ident}")
    if len(message.questions) != 1 or message.questions[0] != question:
        raise Malformed("dns.question_mismatch", f"{message.questions!r}, asked {question!r}")
