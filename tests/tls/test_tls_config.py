"""Secure defaults of the contexts, certificate names and SNI matching."""

from __future__ import annotations

import ssl

import pytest
from tls_support import Certs
from unik.errors import DeviceUnavailable
from unik_tls.config import CertPair, TLSConfig, client_context, parse_version, server_context


def test_contexts_offer_tls12_plus_and_only_ecdhe_aead_suites(certs: Certs) -> None:
    for ctx in (server_context(TLSConfig(pairs=[certs.main.pair()])), client_context(TLSConfig())):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.options & ssl.OP_NO_COMPRESSION and ctx.options & ssl.OP_NO_RENEGOTIATION
        tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert tls12 and all(c["kea"] == "kx-ecdhe" and c["aead"] for c in tls12), tls12
        assert all(c["aead"] for c in ctx.get_ciphers())  # TLS 1.3's too
    client = client_context(TLSConfig())
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    assert client.cert_store_stats()["x509_ca"] > 0 or not ssl.get_default_verify_paths().cafile
    assert server_context(TLSConfig(pairs=[certs.main.pair()], session_tickets=False)).options & ssl.OP_NO_TICKET
    assert server_context(TLSConfig(pairs=[certs.main.pair()])).num_tickets == 2


def test_versions_and_config_checks(certs: Certs) -> None:
    assert parse_version("1.3") == ssl.TLSVersion.TLSv1_3
    for bad in ("1.1", "1.0", "ssl3", ""):
        with pytest.raises(ValueError):
            parse_version(bad)
    with pytest.raises(ValueError):
        TLSConfig(min_version=ssl.TLSVersion.TLSv1_1)
    with pytest.raises(ValueError):
        TLSConfig(handshake_timeout=0)
    with pytest.raises(DeviceUnavailable, match="no certificate"):
        server_context(TLSConfig())
    with pytest.raises(DeviceUnavailable, match="not a PEM certificate"):
        CertPair.from_pem(b"garbage", certs.main.key.read_bytes())
    with pytest.raises(DeviceUnavailable, match="key does not match"):
        server_context(TLSConfig(pairs=[CertPair.from_pem(certs.main.cert.read_bytes(), b"not a key")]))
    with pytest.raises(DeviceUnavailable, match="cannot load the CA"):
        client_context(TLSConfig(cafile="/nonexistent/ca.pem"))


def test_certificate_names_and_sni_matching(certs: Certs) -> None:
    main, wild = certs.main.pair(), certs.wildcard.pair()
    assert main.names == ("localhost", "127.0.0.1") and wild.names == ("*.w.test",)
    assert main.matches("LOCALHOST.") and main.matches("127.0.0.1") and not main.matches("localhost.test")
    assert wild.matches("a.w.test") and not wild.matches("w.test") and not wild.matches("a.b.w.test")


def test_the_development_certificate_is_a_leaf_strict_verifiers_accept(certs: Certs) -> None:
    """``CA:FALSE``, no certificate signing, server authentication: what webpki-style verifiers require.

    The certificate used to be its own CA (``CA:TRUE``), which cryptography's verifier
    (built to the same rules as rustls/webpki and browsers) refuses as a server's certificate.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from cryptography.x509.verification import PolicyBuilder, Store

    for files in (certs.main, certs.rsa):
        leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
        assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and not usage.key_cert_sign
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
        for name in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
            verifier = PolicyBuilder().store(Store([leaf])).build_server_verifier(name)
            assert verifier.verify(leaf, []) == [leaf]



def test_groups_are_set_through_openssl_and_fall_back_to_p256_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the context's ``SSL_CTX`` cannot be found for sure, P-256 alone: still inside the profile."""
    from unik_tls import groups

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    options = ctx.options
    assert groups.set_groups(ctx) is True
    assert ctx.options == options  # the read-back check leaves the options as they were
    monkeypatch.setattr(groups, "_ssl_ctx_pointer", lambda ctx: None)
    assert groups.set_groups(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) is False


def test_groups_take_hvts_built_in_where_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """hvt's CPython has no ctypes but a built-in ``_unik_ssl_groups``: set_groups uses it first."""
    import types

    from unik_tls import groups

    calls: list[tuple[ssl.SSLContext, str]] = []
    def set_groups(ctx: ssl.SSLContext, names: str) -> bool:
        calls.append((ctx, names))
        return True

    built_in = types.ModuleType("_unik_ssl_groups")
    built_in.set_groups = set_groups  # type: ignore[attr-defined]
    monkeypatch.setattr(groups, "_built_in", built_in)  # looked up when unik_tls.groups is imported
    monkeypatch.setattr(groups, "_ssl_ctx_pointer", lambda ctx: None)  # as without ctypes
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert groups.set_groups(ctx) is True and calls == [(ctx, groups.GROUPS)]
