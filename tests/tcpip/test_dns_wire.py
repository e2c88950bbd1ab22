"""The DNS codec: names, queries, and the strict parser's drop reasons."""

from __future__ import annotations

import struct

import pytest
from unik_tcpip.dns import wire
from unik_tcpip.errors import Malformed

QNAME = wire.encode_name("www.Example.com")
QUESTION = QNAME + struct.pack("!HH", wire.A, 1)


def answer(*records: bytes, ident: int = 7, flags: int = 0x8180, qd: bytes = QUESTION, ns: int = 0,
           ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, 1, len(records) - ns - ar, ns, ar) + qd + b"".join(records)


def rr(owner: bytes, rtype: int, data: bytes, ttl: int = 300) -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(data)) + data


def test_names_encode_lowercase_and_check_limits() -> None:
    assert QNAME == b"\x03www\x07example\x03com\x00"
    assert wire.encode_name("example.com.") == wire.encode_name("EXAMPLE.com")
    assert wire.encode_name(".") == wire.ROOT
    assert wire.name_text(QNAME) == "www.example.com"
    assert wire.encode_name("bücher.example") == b"\x0dxn--bcher-kva\x07example\x00"
    for bad in ("a..b", ".a", "x" * 64 + ".com", ".".join(["abcdefghi"] * 26)):
        with pytest.raises(wire.InvalidName):
            wire.encode_name(bad)
    assert wire.name_text(b"\x03a.b\x01\\\x00") == "a\\046b.\\092"


def test_query_has_rd_one_question_and_edns() -> None:
    query = wire.build_query(0xBEEF, QNAME, wire.AAAA)
    message = wire.parse_message(query)
    assert message.id == 0xBEEF and message.flags == wire.RD
    assert message.questions == [wire.Question(QNAME, wire.AAAA)]
    assert message.edns_payload == wire.EDNS_PAYLOAD
    assert wire.parse_message(wire.build_query(1, QNAME, wire.A, edns=False)).edns_payload is None


def test_answers_parse_with_compression() -> None:
    target = b"\x03cdn\xc0\x10"  # cdn.example.com, pointing into the question
    data = answer(rr(b"\xc0\x0c", wire.CNAME, target, 60), rr(b"\xc0\x2d", wire.A, bytes((192, 0, 2, 1)), 30),
                  rr(b"\xc0\x2d", wire.AAAA, bytes(15) + b"\x01"))
    message = wire.parse_message(data)
    cname, a, aaaa = message.answers
    assert cname.data == b"\x03cdn\x07example\x03com\x00" and a.name == cname.data
    assert a.data == "192.0.2.1" and aaaa.data == "::1" and a.ttl == 30
    wire.check_response(message, 7, wire.Question(QNAME, wire.A))


def test_soa_opt_and_ttl_rules() -> None:
    soa = b"\x02ns\xc0\x10\x0ahostmaster\xc0\x10" + struct.pack("!IIIII", 1, 2, 3, 4, 60)
    opt = b"\x00" + struct.pack("!HHIH", wire.OPT, 4096, 1 << 24, 0)
    data = answer(rr(b"\xc0\x10", wire.SOA, soa, ttl=0x80000000), opt, ns=1, ar=1)
    message = wire.parse_message(data)
    assert message.authority[0].ttl == 0  # RFC 2181 8: top bit set counts as zero
    assert isinstance(message.authority[0].data, wire.Soa) and message.authority[0].data.minimum == 60
    assert message.edns_payload == 4096 and message.rcode == 16  # the extended RCODE's upper bits


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x00" * 11, "dns.truncated"),
    (answer(rr(b"\xc0\x0c", wire.A, b"\x01\x02\x03")), "dns.bad_rdata"),
    (answer(rr(b"\xc0\x0c", wire.AAAA, b"\x01" * 4)), "dns.bad_rdata"),
    (answer(rr(b"\xc0\x0c", wire.CNAME, b"\x01a\x00\x00")), "dns.bad_rdata"),
    (answer(rr(b"\xc0\x21", wire.A, b"\x01\x02\x03\x04")), "dns.pointer_loop"),   # points at itself
    (answer(rr(b"\xc0\x30", wire.A, b"\x01\x02\x03\x04")), "dns.pointer_forward"),
    (answer(rr(b"\x01a\xc0\x21", wire.A, b"\x01\x02\x03\x04")), "dns.pointer_loop"),  # back into its own start
    (answer(rr(b"\x41a", wire.A, b"")), "dns.bad_label_type"),
    (answer(rr(b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + b"\x00",
               wire.A, b"\x01\x02\x03\x04")), "dns.name_too_long"),
    (answer(rr(b"\xc0\x0c", wire.A, b"\x01\x02\x03\x04")) + b"\x00", "dns.trailing_data"),
    (answer(rr(b"\xc0\x0c", wire.A, b"\x01\x02\x03\x04"))[:-1], "dns.truncated"),
    (answer(b"\x00" + struct.pack("!HHIH", wire.OPT, 1232, 0, 0)), "dns.bad_opt"),  # an OPT among answers
])
def test_malformed_answers_have_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as info:
        wire.parse_message(data)
    assert info.value.reason == reason


def test_pointer_chains_going_backwards_are_fine() -> None:
    # a -> b -> question: each pointer earlier than the last
    first = b"\x01b\xc0\x10"                      # b.example.com at 33
    second = b"\x01a\xc0\x21"                     # a.b.example.com
    data = answer(rr(first, wire.A, b"\x01\x02\x03\x04"), rr(second, wire.A, b"\x05\x06\x07\x08"))
    names = [wire.name_text(r.name) for r in wire.parse_message(data).answers]
    assert names == ["b.example.com", "a.b.example.com"]


def test_responses_must_match_the_query() -> None:
    good = answer(rr(b"\xc0\x0c", wire.A, b"\x01\x02\x03\x04"))
    question = wire.Question(QNAME, wire.A)
    wire.check_response(wire.parse_message(good), 7, question)
    for ident, q, flags, reason in ((8, question, 0x8180, "dns.wrong_id"),
                                    (7, wire.Question(QNAME, wire.AAAA), 0x8180, "dns.question_mismatch"),
                                    (7, wire.Question(wire.encode_name("other.com"), wire.A), 0x8180,
                                     "dns.question_mismatch"),
                                    (7, question, 0x0100, "dns.not_response")):
        data = answer(rr(b"\xc0\x0c", wire.A, b"\x01\x02\x03\x04"), flags=flags)
        with pytest.raises(Malformed) as info:
            wire.check_response(wire.parse_message(data), ident, q)
        assert info.value.reason == reason


def test_a_non_ascii_name_without_the_idna_codec_says_what_to_give(monkeypatch: pytest.MonkeyPatch) -> None:
    """VM images leave encodings.idna (and unicodedata) out: such a name is refused with its fix."""
    import importlib

    real = importlib.import_module

    def without_idna(name: str, package: str | None = None) -> object:
        if name == "encodings.idna":
            raise ImportError(name)
        return real(name, package)
    monkeypatch.setattr(importlib, "import_module", without_idna)
    with pytest.raises(wire.InvalidName, match="xn--"):
        wire.encode_name("bücher.example")
    assert wire.encode_name("xn--bcher-kva.example") == b"\x0dxn--bcher-kva\x07example\x00"
