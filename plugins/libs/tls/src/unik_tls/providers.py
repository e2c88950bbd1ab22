"""Device providers of unik-lib-tls: the ``tls`` device, its certificates from a store or from files.

Two providers, one of which applies to any ``tls`` device:

* ``tls.kv`` when the device table says ``store = true``: the pairs come from a ``kv_ro``
  device named ``certs`` (rename it with ``use = { certs = "..." }``): ``cert.pem`` and
  ``key.pem``, plus one directory per extra SNI pair, and ``ca.pem``;
* ``tls.files`` otherwise: ``cert`` and ``key`` files named in the table are baked into
  the artifact; ``--tls-cert``/``--tls-key`` (host paths, read when the application
  starts) add or replace the pair; with neither the device is a client only
  (``client_only = true`` says so explicitly).

Both need the ``stack`` device, for ``start_server`` and ``open_connection``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from unik.keys import Key
from unik.provider import BakedFile, Configured, KeyRef, Need, Option, Provider, Request

TLS_CERT = Key("tls_cert", "TLS certificate chain (PEM) on the host, read at start (with --tls-key)",
               metavar="FILE")
TLS_KEY = Key("tls_key", "TLS private key (PEM) on the host, read at start (with --tls-cert)", metavar="FILE")



def _min_version(value: str) -> None:
    if value not in ("1.2", "1.3"):
        raise ValueError(f"{value!r}: use \"1.2\" or \"1.3\"")


def _handshake_timeout(value: float) -> None:
    if not 0 < float(value) <= 600:
        raise ValueError("must be between 0 and 600 seconds")


_COMMON = (
    Option("alpn", "ALPN protocols, comma-separated, in preference order (e.g. \"h2,http/1.1\")", default=""),
    Option("handshake_timeout", "seconds a handshake may take before the flow is closed", "float", default=10.0,
           check=_handshake_timeout),
    Option("min_version", "lowest TLS version: \"1.2\" or \"1.3\"", default="1.2", check=_min_version),
    Option("verify", "clients verify the server's certificate and name (turn off for tests only)", "bool",
           default=True),
    Option("session_tickets", "the server issues session tickets (resumption)", "bool", default=True),
    Option("ca", "CA certificates (PEM) clients trust, baked into the artifact (default: the system's)", "path"),
)
_STACK: Mapping[str, Need] = {"stack": Need("stack")}


def _common(cls: type[Provider], request: Request) -> Configured:
    options = cls.table_options(request)
    configured = Configured()
    ca = options.pop("ca", None)
    if ca is not None:
        dest = f"tls/{request.device}/ca.pem"
        configured.files.append(BakedFile(ca, dest))
        options["ca_file"] = dest
    configured.options = options
    return configured


class TlsFilesProvider(Provider):
    """TLS with one certificate/key pair from files (baked) or host paths (``--tls-cert``), or client-only."""

    PLUGIN_NAME = "tls.files"
    kind = "tls"
    implementation = "unik_tls.device:OpenSSLTLS"
    description = "TLS 1.2/1.3 (OpenSSL) over the stack's flows; certificate from cert/key files or --tls-cert"
    needs: ClassVar[Mapping[str, Need]] = _STACK
    keys: ClassVar[Sequence[Key]] = (TLS_CERT, TLS_KEY)
    options = (
        Option("cert", "certificate chain (PEM, leaf first), baked into the artifact", "path"),
        Option("key", "private key (PEM) of the certificate, baked into the artifact", "path"),
        Option("client_only", "no certificate: the device only makes client connections", "bool", default=False),
        *_COMMON,
    )

    @classmethod
    def applies(cls, request: Request) -> bool:
        """Unless the table asks for a store (``store = true``)."""
        return request.table.get("store") is not True

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Bake ``cert`` and ``key`` as ``tls/<device>/``; read ``--tls-cert``/``--tls-key`` at run time."""
        for name in ("cert", "key"):
            value = request.table.get(name)
            if isinstance(value, str) and not (request.root / value).exists():
                raise request.error(name, f"{value!r} does not exist (looked in {request.root}); "
                                    "make a development pair with `unik tls selfsigned -o certs`")
        if ("cert" in request.table) != ("key" in request.table):
            raise request.error("key" if "cert" in request.table else "cert", "cert and key go together")
        configured = _common(cls, request)
        options = configured.options
        client_only = options.pop("client_only")
        cert, key = options.pop("cert", None), options.pop("key", None)
        if client_only and cert:
            raise request.error("client_only", "a client-only device takes no cert/key")
        if cert and key:
            for source, name in ((cert, "cert.pem"), (key, "key.pem")):
                dest = f"tls/{request.device}/{name}"
                configured.files.append(BakedFile(str(Path(source)), dest))
                options[f"{name[:-4]}_file"] = dest
            configured.notes.append("the private key is baked into the artifact: keep the artifact private, "
                                    "or give --tls-cert/--tls-key at run time")
        configured.key_options = {"tls_cert": KeyRef("tls_cert"), "tls_key": KeyRef("tls_key")}
        return configured


class TlsKVProvider(Provider):
    """TLS with its pairs in a ``kv_ro`` device (``certs``): SNI picks among several."""

    PLUGIN_NAME = "tls.kv"
    kind = "tls"
    implementation = "unik_tls.device:OpenSSLTLS"
    description = ("TLS 1.2/1.3 (OpenSSL) over the stack's flows; cert.pem/key.pem (and one directory per "
                   "SNI name) from a kv_ro device")
    needs: ClassVar[Mapping[str, Need]] = {**_STACK, "certs": Need("kv_ro", "certs")}
    keys: ClassVar[Sequence[Key]] = (TLS_CERT, TLS_KEY)
    options = (Option("store", "take the pairs from the kv_ro device `certs`", "bool", default=True), *_COMMON)

    @classmethod
    def applies(cls, request: Request) -> bool:
        """With ``store = true`` in the device table."""
        return request.table.get("store") is True

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Options checked; ``--tls-cert``/``--tls-key`` may still add a pair at run time."""
        configured = _common(cls, request)
        configured.options.pop("store")
        configured.key_options = {"tls_cert": KeyRef("tls_cert"), "tls_key": KeyRef("tls_key")}
        return configured


PROVIDERS: list[type[Provider]] = [TlsFilesProvider, TlsKVProvider]
