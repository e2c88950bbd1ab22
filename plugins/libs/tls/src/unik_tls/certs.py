"""Development certificates: a self-signed certificate and its key, made with ``cryptography``."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["selfsigned", "write_pair"]


def _san(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def selfsigned(names: Sequence[str], days: int = 30, key_type: str = "ec",
               now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """A self-signed server certificate for ``names`` (DNS names or IP addresses), PEM cert and key.

    ``key_type`` is ``"ec"`` (P-256, the default) or ``"rsa"`` (3072 bits).  The
    certificate is an end-entity one (``CA:FALSE``, server authentication only, no
    certificate signing), which strict verifiers (rustls/webpki, browsers) require of a
    server's certificate; clients trust it directly as a self-signed anchor
    (``curl --cacert cert.pem``).  Valid from an hour ago for ``days`` days.
    """
    if not names:
        raise ValueError("a certificate needs at least one name")
    if days < 1:
        raise ValueError("days must be at least 1")
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ValueError(f"key type {key_type!r}: use ec or rsa")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "unik development certificate")])
    usage = x509.KeyUsage(digital_signature=True, key_encipherment=key_type == "rsa", key_cert_sign=False,
                          content_commitment=False, data_encipherment=False, key_agreement=False,
                          crl_sign=False, encipher_only=False, decipher_only=False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem


def write_pair(cert_pem: bytes, key_pem: bytes, cert_path: Path, key_path: Path, force: bool = False) -> None:
    """Write the pair; the key readable by its owner only.  Refuses to overwrite unless ``force``."""
    for path in (cert_path, key_path):
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists (use --force to replace it)")
        path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert_pem)
    if key_path.exists():
        key_path.unlink()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
