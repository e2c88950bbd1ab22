"""The names a certificate serves, read from its DER without ``cryptography``.

``cryptography`` parses certificates with a Rust extension module, which a unikernel
whose CPython is linked statically (the hvt target) cannot load; this reads the two
things :class:`unik_tls.config.CertPair` needs, the subject alternative names (DNS and
IP) and the subject's common name, with a few lines of DER.
"""

from __future__ import annotations

import base64
import ipaddress
import re

__all__ = ["leaf_names"]

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)
_SAN = bytes.fromhex("551d11")  # 2.5.29.17, subjectAltName
_CN = bytes.fromhex("550403")   # 2.5.4.3, commonName
_OID, _SEQUENCE, _OCTETS = 0x06, 0x30, 0x04


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the element at ``at``."""
    if at + 2 > len(der):
        raise ValueError("truncated DER")
    tag, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or at + count > len(der):
            raise ValueError("bad DER length")
        length = int.from_bytes(der[at:at + count], "big")
        at += count
    if at + length > len(der):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, vstart, vend = _tlv(der, start)
        out.append((tag, vstart, vend))
        start = vend
    return out


def leaf_names(cert_pem: bytes) -> tuple[str, ...]:
    """The first certificate's DNS and IP alternative names, else its common name; lower-case.

    :class:`ValueError` when ``cert_pem`` holds no PEM certificate or it does not parse.
    """
    m = _PEM.search(cert_pem)
    if not m:
        raise ValueError("no PEM certificate")
    try:
        der = base64.b64decode(m.group(1), validate=False)
    except ValueError as exc:
        raise ValueError(f"bad base64 in the certificate ({exc})") from None
    tag, start, end = _tlv(der, 0)
    if tag != _SEQUENCE:
        raise ValueError("not a certificate")
    tag, start, end = _tlv(der, start)  # tbsCertificate
    if tag != _SEQUENCE:
        raise ValueError("not a certificate")
    fields = _children(der, start, end)
    plain = [f for f in fields if f[0] & 0xC0 == 0]  # serial, signature, issuer, validity, subject, key
    if len(plain) < 6:
        raise ValueError("not a certificate")
    names: list[str] = []
    for tag, vstart, vend in fields:
        if tag != 0xA3:  # [3] extensions
            continue
        (_, seq_start, seq_end), = _children(der, vstart, vend)
        for _, ext_start, ext_end in _children(der, seq_start, seq_end):
            parts = _children(der, ext_start, ext_end)
            if parts[0][0] == _OID and der[parts[0][1]:parts[0][2]] == _SAN and parts[-1][0] == _OCTETS:
                (_, gn_start, gn_end), = _children(der, parts[-1][1], parts[-1][2])
                general = _children(der, gn_start, gn_end)
                names += [der[s:e].decode("ascii").lower() for t, s, e in general if t == 0x82]  # dNSName
                names += [str(ipaddress.ip_address(der[s:e])) for t, s, e in general if t == 0x87]  # iPAddress
    if names:
        return tuple(names)
    _, sub_start, sub_end = plain[4]  # the subject
    for _, rdn_start, rdn_end in _children(der, sub_start, sub_end):
        for _, atv_start, atv_end in _children(der, rdn_start, rdn_end):
            (otag, os_, oe), (_, vs, ve) = _children(der, atv_start, atv_end)[:2]
            if otag == _OID and der[os_:oe] == _CN:
                names.append(der[vs:ve].decode("utf-8", "replace").lower())
    return tuple(names)
