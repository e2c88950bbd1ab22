"""A fuzz target over unik-lib-tcpip's DNS codec and the resolver's reading of answers.

Each input is a DNS message as a server would send it.  For every input:

* :func:`unik_tcpip.dns.wire.parse_message` either parses or raises
  :class:`unik_tcpip.errors.Malformed` whose reason starts with ``dns.`` — nothing else,
  and in bounded time (compression pointers cannot loop);
* every parsed name is at most 255 octets and reads back through ``name_text``;
* :func:`unik_tcpip.dns.wire.check_response` against a fixed question accepts or
  raises ``Malformed`` (``dns.wrong_id``, ``dns.question_mismatch``, ``dns.not_response``);
* an accepted answer is interpreted (:func:`unik_tcpip.dns.resolver.interpret`): CNAME
  chains are bounded, the outcome is an address list, NXDOMAIN, NODATA or a name to follow;
* a DHCP option 119 (search list) holding the same bytes parses or is counted.

Run with atheris (coverage-guided, libFuzzer)::

    python tests/tcpip/fuzz_dns.py [CORPUS_DIR] -max_total_time=600

``--seed DIR`` writes a seed corpus (real answers: A, AAAA, CNAME chains, NXDOMAIN with
an SOA, OPT).  :mod:`tests/tcpip/test_dns_fuzz.py` runs it briefly and drives
:func:`one_input` with hypothesis where atheris has no wheel.
"""

from __future__ import annotations

import struct
import sys
from collections import Counter
from typing import Any

IDENT = 0x1234
QNAME = b"\x03www\x07example\x03com\x00"


def _instrumented() -> Any:
    """Import the modules under test (inside atheris' instrumentation when it runs)."""
    from unik_tcpip import dhcp  # noqa: F401
    from unik_tcpip.dns import resolver, wire  # noqa: F401
    return sys.modules["unik_tcpip"]


def one_input(data: bytes) -> None:
    """Parse ``data`` as an answer to ``www.example.com A`` and as a DHCP search list."""
    from unik_tcpip.dhcp import OPT_DOMAIN_SEARCH, search_domains
    from unik_tcpip.dns import wire
    from unik_tcpip.dns.resolver import MAX_CNAME, ResolverUnavailable, interpret
    from unik_tcpip.errors import Malformed

    stats: Counter[str] = Counter()
    try:
        message = wire.parse_message(data)
    except Malformed as exc:
        assert exc.reason.startswith("dns."), exc.reason
    else:
        for record in [*message.answers, *message.authority, *message.additional]:
            assert len(record.name) <= wire.MAX_NAME
            wire.name_text(record.name)
            assert 0 <= record.ttl <= wire.MAX_TTL
        for question in message.questions:
            assert len(question.name) <= wire.MAX_NAME
        try:
            wire.check_response(message, IDENT, wire.Question(QNAME, wire.A))
        except Malformed as exc:
            assert exc.reason in ("dns.wrong_id", "dns.question_mismatch", "dns.not_response"), exc.reason
        for qtype in (wire.A, wire.AAAA):
            try:
                outcome = interpret(QNAME, qtype, message, stats)
            except ResolverUnavailable:
                assert stats["dns.cname_chain_too_long"] == 1
                stats.clear()
                continue
            assert outcome.kind in ("positive", "nxdomain", "nodata")
            assert outcome.ttl >= 0 and (outcome.kind == "positive") == bool(outcome.addresses)
    assert MAX_CNAME < 64
    domains = search_domains({OPT_DOMAIN_SEARCH: data}, stats)
    assert len(domains) <= 16


def _answer(records: list[bytes], rcode: int = 0, an: int | None = None, ns: int = 0, ar: int = 0) -> bytes:
    header = struct.pack("!HHHHHH", IDENT, 0x8180 | rcode, 1, len(records) if an is None else an, ns, ar)
    return header + QNAME + struct.pack("!HH", 1, 1) + b"".join(records)


def seeds() -> dict[str, bytes]:
    """Valid answers to start from."""
    a = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes((192, 0, 2, 1))
    aaaa = b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 300, 16) + bytes(15) + b"\x01"
    cname_target = b"\x03cdn\xc0\x10"
    cname = b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, len(cname_target)) + cname_target
    a_of_cname = b"\xc0\x2d" + struct.pack("!HHIH", 1, 1, 30, 4) + bytes((198, 51, 100, 7))
    soa_data = b"\x02ns\xc0\x10" + b"\x0ahostmaster\xc0\x10" + struct.pack("!IIIII", 1, 2, 3, 4, 60)
    soa = b"\xc0\x10" + struct.pack("!HHIH", 6, 1, 600, len(soa_data)) + soa_data
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return {
        "a": _answer([a]),
        "aaaa": _answer([aaaa]),
        "cname": _answer([cname, a_of_cname]),
        "nxdomain": _answer([soa], rcode=3, an=0, ns=1),
        "edns": _answer([a, opt], an=1, ar=1),
        "search": b"\x07example\x03com\x00\x04corp\xc0\x00",
    }


if __name__ == "__main__":
    from fuzz_support import fuzz_main

    fuzz_main(sys.argv, one_input, seeds, _instrumented, seed_prefix="seed-")
