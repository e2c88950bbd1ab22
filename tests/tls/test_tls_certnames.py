"""unik_tls.certnames reads the names a certificate serves as cryptography does (hvt has no cryptography)."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from unik_tls.certnames import leaf_names
from unik_tls.certs import selfsigned
from unik_tls.config import CertPair


def _cert(subject_cn: str | None, san: list[x509.GeneralName] | None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "unik")]
                     + ([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)] if subject_cn else []))
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    if san:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM)


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_the_names_of_unik_tls_selfsigned_certificates(key_type: str) -> None:
    cert, key = selfsigned(["localhost", "Example.ORG", "10.0.0.2", "fd00::2"], key_type=key_type)
    assert leaf_names(cert) == CertPair.from_pem(cert, key).names == (
        "localhost", "example.org", "10.0.0.2", "fd00::2")


def test_the_common_name_without_alternative_names_and_a_chain_takes_its_leaf() -> None:
    only_cn = _cert("Legacy.Example", None)
    assert leaf_names(only_cn) == ("legacy.example",)
    other = _cert("other", [x509.DNSName("other.example")])
    assert leaf_names(only_cn + other) == ("legacy.example",)
    assert leaf_names(_cert(None, None)) == ()


def test_an_openssl_made_certificate_reads_the_same(tmp_path: Path) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=ignored", "-addext",
                    "subjectAltName=DNS:a.example,DNS:*.b.example,IP:127.0.0.1"], check=True, capture_output=True)
    pem = cert.read_bytes()
    parsed = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert leaf_names(pem) == ("a.example", "*.b.example", "127.0.0.1")
    assert len(parsed.value) == 3


@pytest.mark.parametrize("pem", [b"", b"hello", b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
                                 b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"])
def test_what_is_not_a_certificate_is_a_value_error(pem: bytes) -> None:
    with pytest.raises(ValueError):
        leaf_names(pem)


def test_certpair_reads_its_names_without_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    from unik.errors import DeviceUnavailable

    cert, key = selfsigned(["localhost", "127.0.0.1"])
    for module in ("cryptography", "cryptography.x509", "cryptography.x509.oid"):
        monkeypatch.setitem(sys.modules, module, None)  # as in hvt: it cannot be imported
    assert CertPair.from_pem(cert, key, label="c.pem").names == ("localhost", "127.0.0.1")
    with pytest.raises(DeviceUnavailable, match=r"TLS certificate c\.pem: not a PEM certificate"):
        CertPair.from_pem(b"junk", key, label="c.pem")

