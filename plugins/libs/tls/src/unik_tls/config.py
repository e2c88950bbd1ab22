"""TLS configuration: certificate/key pairs and the :class:`ssl.SSLContext` objects built from them.

Secure by default, as Mozilla's "intermediate" profile: TLS 1.2 at least; for TLS 1.2
only ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305); TLS 1.3's suites
are all AEAD already; key exchange on X25519, P-256 and P-384 only (:mod:`.groups`); no
compression, no renegotiation; clients verify the peer's chain and hostname.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from unik.errors import DeviceUnavailable

from .groups import set_groups

__all__ = ["TLS12_CIPHERS", "CertPair", "TLSConfig", "SniCallback", "parse_version", "server_context",
           "client_context", "is_ip"]

#: The TLS 1.2 suites offered and accepted: forward secrecy (ECDHE) and AEAD only.
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
])

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def parse_version(text: str) -> ssl.TLSVersion:
    """``"1.2"`` or ``"1.3"`` as a :class:`ssl.TLSVersion`; older versions are refused."""
    try:
        return _VERSIONS[text]
    except KeyError:
        raise ValueError(f"TLS version {text!r}: use 1.2 or 1.3 (older versions are not offered)") from None


@dataclass(frozen=True)
class CertPair:
    """A certificate chain (PEM, leaf first) and its private key (PEM), with the names it serves.

    ``names`` are the certificate's DNS and IP subject alternative names (its common
    name when it has none), lower-case; SNI selection matches them, ``*.`` wildcards
    covering one label.
    """

    cert_pem: bytes
    key_pem: bytes
    names: tuple[str, ...] = ()
    label: str = ""

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, label: str = "") -> CertPair:
        """Parse the leaf certificate's names; :class:`DeviceUnavailable` if it is not a certificate."""
        try:
            from cryptography import x509
            from cryptography.x509.oid import NameOID
        except ImportError:  # its Rust extension cannot load (hvt's static CPython): a few lines of DER
            from .certnames import leaf_names

            try:
                return cls(cert_pem, key_pem, leaf_names(cert_pem), label)
            except ValueError as exc:
                raise DeviceUnavailable(f"TLS certificate {label or ''}: not a PEM certificate ({exc})") from None
        try:
            leaf = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise DeviceUnavailable(f"TLS certificate {label or ''}: not a PEM certificate ({exc})") from None
        names: list[str] = []
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names += [n.lower() for n in san.get_values_for_type(x509.DNSName)]
            names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
        if not names:
            names += [str(a.value).lower() for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        return cls(cert_pem, key_pem, tuple(names), label)

    @classmethod
    def from_files(cls, cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> CertPair:
        """Read a pair from PEM files."""
        try:
            with open(cert, "rb") as c, open(key, "rb") as k:
                return cls.from_pem(c.read(), k.read(), label=str(cert))
        except OSError as exc:
            raise DeviceUnavailable(f"TLS certificate/key: cannot read {exc.filename}: {exc.strerror}") from None

    def matches(self, server_name: str) -> bool:
        """Whether the certificate covers ``server_name`` (exactly or by a one-label wildcard)."""
        name = server_name.lower().rstrip(".")
        for pattern in self.names:
            if pattern == name:
                return True
            if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
                return True
        return False


#: Chooses the pair for a client's SNI name (``None`` when it sent none); ``None``: default choice.
SniCallback = Callable[[str | None], CertPair | None]


@dataclass
class TLSConfig:
    """Everything a TLS device needs; the defaults are the secure ones.

    ``pairs``: the server's certificate/key pairs, the first being the default one when
    no other matches the client's SNI name; ``sni_callback`` may choose instead.
    ``cafile``/``cadata``: CA certificates clients trust (the system's when neither is
    given); ``verify`` off disables client verification (tests only).
    """

    pairs: Sequence[CertPair] = ()
    alpn: Sequence[str] = ()
    handshake_timeout: float = 10.0
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    verify: bool = True
    cafile: str | None = None
    cadata: str | None = None
    session_tickets: bool = True
    sni_callback: SniCallback | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.min_version < ssl.TLSVersion.TLSv1_2:
            raise ValueError("TLS versions below 1.2 are not supported")
        if not self.handshake_timeout > 0:
            raise ValueError("handshake_timeout must be positive")


def _harden(ctx: ssl.SSLContext, config: TLSConfig) -> None:
    ctx.minimum_version = config.min_version
    ctx.maximum_version = config.max_version
    ctx.set_ciphers(TLS12_CIPHERS)
    set_groups(ctx)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if config.alpn:
        ctx.set_alpn_protocols(list(config.alpn))


@contextlib.contextmanager
def _pem_paths(pair: CertPair) -> Iterator[tuple[str, str]]:
    """The pair as two readable paths (OpenSSL loads keys from files), gone afterwards.

    Anonymous memory files (memfd) when ``/proc`` is there, so the key never touches a
    disk; otherwise owner-only temporary files, removed at once.
    """
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds = [os.memfd_create("unik-tls-cert"), os.memfd_create("unik-tls-key")]
        try:
            for fd, data in zip(fds, (pair.cert_pem, pair.key_pem), strict=True):
                os.write(fd, data)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="unik-tls-") as tmp:
        paths = (os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem"))
        for path, data in zip(paths, (pair.cert_pem, pair.key_pem), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        yield paths


def _pair_context(pair: CertPair, config: TLSConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx, config)
    if not config.session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
    with _pem_paths(pair) as (cert, key):
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise DeviceUnavailable(
                f"TLS certificate {pair.label or ', '.join(pair.names)}: the key does not match the "
                f"certificate or is not a PEM private key ({exc.reason or exc})") from None
    return ctx


def server_context(config: TLSConfig) -> ssl.SSLContext:
    """The server context: the first pair, and SNI switching to the others.

    The switch happens in OpenSSL's servername callback: the connection takes the
    context of the pair that ``config.sni_callback`` returns, else the first whose
    names match, else stays on the default.
    """
    if not config.pairs:
        raise DeviceUnavailable("TLS server: no certificate and key configured")
    contexts = {id(p): _pair_context(p, config) for p in config.pairs}
    default = contexts[id(config.pairs[0])]
    if len(config.pairs) == 1 and config.sni_callback is None:
        return default

    def choose(sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        pair = config.sni_callback(server_name) if config.sni_callback else None
        if pair is None and server_name:
            pair = next((p for p in config.pairs if p.matches(server_name)), None)
        if pair is None:
            return
        ctx = contexts.get(id(pair))
        if ctx is None:
            ctx = contexts[id(pair)] = _pair_context(pair, config)
        if ctx is not default:
            sslobj.context = ctx

    default.sni_callback = choose
    return default


def client_context(config: TLSConfig) -> ssl.SSLContext:
    """The client context: verification against ``cafile``/``cadata`` or the system's CAs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx, config)
    if config.verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        if config.cafile or config.cadata:
            try:
                ctx.load_verify_locations(cafile=config.cafile, cadata=config.cadata)
            except (OSError, ssl.SSLError) as exc:
                raise DeviceUnavailable(f"TLS client: cannot load the CA certificates: {exc}") from None
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def is_ip(name: str) -> bool:
    """Whether ``name`` is an IP address literal (sent without SNI, checked against IP SANs)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
