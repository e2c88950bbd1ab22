"""``OpenSSLTLS``: the :class:`unik.devices.TLS` device of unik-lib-tls."""

from __future__ import annotations

import logging
import ssl
from collections import Counter
from collections.abc import Sequence

from unik import lifecycle, runtime
from unik.devices import KVRO, EntryKind, Flow, FlowHandler, FlowReader, FlowWriter, Server, Stack
from unik.errors import DeviceClosed, DeviceUnavailable, KeyNotFound, TLSError

from .config import CertPair, SniCallback, TLSConfig, client_context, parse_version, server_context
from .flow import STREAM_LIMIT, TLSConnection, handshake, wrap

__all__ = ["OpenSSLTLS", "pairs_from_kv"]

log = logging.getLogger("unik_tls")

#: Client sessions kept for resumption, by server name.
SESSION_CACHE = 256


async def pairs_from_kv(store: KVRO) -> tuple[list[CertPair], str | None]:
    """The certificate/key pairs and CA bundle of a key/value store.

    ``cert.pem`` + ``key.pem`` at the top are the default pair; every dictionary that
    holds both is another pair (chosen by SNI: its directory name does not matter, the
    certificate's names do); ``ca.pem`` at the top is the CA bundle clients trust.
    """
    pairs: list[CertPair] = []
    if await store.exists("cert.pem") is EntryKind.VALUE and await store.exists("key.pem") is EntryKind.VALUE:
        pairs.append(CertPair.from_pem(await store.get("cert.pem"), await store.get("key.pem"), "cert.pem"))
    for name, kind in await store.list(""):
        if kind is not EntryKind.DICTIONARY:
            continue
        try:
            cert, key = await store.get(f"{name}/cert.pem"), await store.get(f"{name}/key.pem")
        except KeyNotFound:
            continue
        pairs.append(CertPair.from_pem(cert, key, f"{name}/cert.pem"))
    ca = (await store.get("ca.pem")).decode("ascii") if await store.exists("ca.pem") is EntryKind.VALUE else None
    return pairs, ca


class OpenSSLTLS:
    """TLS 1.2/1.3 over unik flows, OpenSSL doing the cryptography.

    ``server(flow)`` and ``client(flow, server_hostname)`` wrap any flow;
    ``start_server(handler, port)`` and ``open_connection(host, port)`` do the same on
    the device's stack.  ``stats`` counts handshakes and failures by kind
    (``"server.handshakes"``, ``"server.failed.TLSCertificateError"``...).
    """

    def __init__(self, config: TLSConfig, stack: Stack | None = None) -> None:
        self.config = config
        self.stack = stack
        self.stats: Counter[str] = Counter()
        self._server_ctx = server_context(config) if config.pairs else None
        self._client_ctx: ssl.SSLContext | None = None
        self._sessions: dict[str, ssl.SSLSession] = {}
        self._servers: list[Server] = []
        self._closed = False

    @classmethod
    def create(cls, stack: Stack | None = None, *, pairs: Sequence[CertPair] = (), alpn: Sequence[str] = (),
               cafile: str | None = None, cadata: str | None = None, verify: bool = True,
               handshake_timeout: float = 10.0, min_version: str = "1.2", max_version: str | None = None,
               session_tickets: bool = True, sni_callback: SniCallback | None = None) -> OpenSSLTLS:
        """A device built in code (tests, applications wiring devices themselves)."""
        top = parse_version(max_version) if max_version else ssl.TLSVersion.MAXIMUM_SUPPORTED
        return cls(TLSConfig(pairs=list(pairs), alpn=list(alpn), cafile=cafile, cadata=cadata, verify=verify,
                             handshake_timeout=handshake_timeout, min_version=parse_version(min_version),
                             max_version=top, session_tickets=session_tickets, sni_callback=sni_callback), stack)

    @classmethod
    async def connect(cls, stack: Stack | None = None, certs: KVRO | None = None, *,
                      cert_file: str | None = None, key_file: str | None = None,
                      tls_cert: str | None = None, tls_key: str | None = None,
                      ca_file: str | None = None, alpn: str = "", handshake_timeout: float = 10.0,
                      min_version: str = "1.2", verify: bool = True, session_tickets: bool = True) -> OpenSSLTLS:
        """The device as the generated ``main.py`` acquires it.

        Pairs come from the ``certs`` store (see :func:`pairs_from_kv`), from files baked
        into the artifact (``cert_file``/``key_file``, relative to it), or from host
        paths given at run time (``--tls-cert``/``--tls-key``, which win).  ``alpn`` is a
        comma-separated list (``"h2,http/1.1"``); ``ca_file`` (baked) is what clients trust.
        """
        pairs: list[CertPair] = []
        cadata: str | None = None
        if (tls_cert is None) != (tls_key is None):
            raise DeviceUnavailable("TLS: --tls-cert and --tls-key go together")
        if tls_cert and tls_key:
            pairs.append(CertPair.from_files(tls_cert, tls_key))
        elif cert_file and key_file:
            pairs.append(CertPair.from_files(runtime.artifact_path(cert_file), runtime.artifact_path(key_file)))
        if certs is not None:
            kv_pairs, cadata = await pairs_from_kv(certs)
            if not pairs and not kv_pairs:
                raise DeviceUnavailable(
                    "TLS: the certs store holds no cert.pem and key.pem; make a development pair with "
                    "`unik tls selfsigned -o DIR` and bake DIR as the store's source")
            pairs += kv_pairs
        try:
            version = parse_version(min_version)
        except ValueError as exc:
            raise DeviceUnavailable(f"TLS: {exc}") from None
        cafile = str(runtime.artifact_path(ca_file)) if ca_file else None
        config = TLSConfig(pairs=pairs, alpn=[p.strip() for p in alpn.split(",") if p.strip()],
                           handshake_timeout=handshake_timeout, min_version=version, verify=verify,
                           cafile=cafile, cadata=cadata, session_tickets=session_tickets)
        device = cls(config, stack)
        lifecycle.subscribe(lifecycle.BEFORE_SEAL, device.before_seal)
        return device

    def before_seal(self) -> None:
        """A sandbox (spt) seals the process next: make the client context while its CA file can be read.

        Only for a CA file or store the device was given: the system's CA store is a
        directory OpenSSL reads at each verification, which no sealed process can.
        """
        if self._client_ctx is None and not self._closed and (self.config.cafile or self.config.cadata):
            self._client_ctx = client_context(self.config)

    def _check(self) -> None:
        if self._closed:
            raise DeviceClosed("the TLS device is disconnected")

    def ssl_context(self, server_side: bool) -> ssl.SSLContext:
        """The :class:`ssl.SSLContext` of this device's server (its certificates, SNI, ALPN) or client side.

        For asyncio's ``ssl=``: unik's event loop (``unik_tcpip.aio``) takes the device itself
        (``asyncio.start_server(handler, None, 443, ssl=tls)``).
        """
        self._check()
        if not server_side:
            if self._client_ctx is None:
                self._client_ctx = client_context(self.config)
            return self._client_ctx
        if self._server_ctx is None:
            raise DeviceUnavailable("TLS server: no certificate configured (cert/key, --tls-cert, or a certs store)")
        return self._server_ctx

    async def server(self, flow: Flow, *, limit: int = STREAM_LIMIT) -> Flow:
        """Run a server handshake over ``flow``; the plaintext flow, or a :class:`TLSError`."""
        self._check()
        if self._server_ctx is None:
            raise DeviceUnavailable("TLS server: no certificate configured (cert/key, --tls-cert, or a certs store)")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn = TLSConnection(self._server_ctx.wrap_bio(incoming, outgoing, server_side=True), incoming,
                             outgoing, flow)
        try:
            await handshake(conn, self.config.handshake_timeout)
        except TLSError as exc:
            self.stats[f"server.failed.{type(exc).__name__}"] += 1
            raise
        self.stats["server.handshakes"] += 1
        if conn.sslobj.session_reused:
            self.stats["server.resumed"] += 1
        return wrap(conn, limit)

    async def client(self, flow: Flow, server_hostname: str, *, limit: int = STREAM_LIMIT) -> Flow:
        """Run a client handshake over ``flow`` for ``server_hostname``; a :class:`TLSError` on failure.

        The name goes out as SNI (unless it is an IP address) and is checked against the
        certificate; a session from an earlier connection to the same name is resumed.
        """
        # ssl encodes server_hostname with the "idna" codec (ssl._encode_hostname), a lazy
        # standard-library import a VM image's import scan does not follow: named here, it does.
        import encodings.idna  # noqa: F401

        self._check()
        if self._client_ctx is None:
            self._client_ctx = client_context(self.config)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        session = self._sessions.get(server_hostname)
        try:
            sslobj = self._client_ctx.wrap_bio(incoming, outgoing, server_side=False,
                                               server_hostname=server_hostname, session=session)
        except ValueError:  # a session of an earlier context: start afresh
            self._sessions.pop(server_hostname, None)
            sslobj = self._client_ctx.wrap_bio(incoming, outgoing, server_side=False,
                                               server_hostname=server_hostname)
        conn = TLSConnection(sslobj, incoming, outgoing, flow)
        try:
            await handshake(conn, self.config.handshake_timeout)
        except TLSError as exc:
            self._sessions.pop(server_hostname, None)
            self.stats[f"client.failed.{type(exc).__name__}"] += 1
            raise
        self.stats["client.handshakes"] += 1
        if sslobj.session_reused:
            self.stats["client.resumed"] += 1
        plain = wrap(conn, limit)
        self._remember(server_hostname, conn)
        conn.on_close = lambda c: self._remember(server_hostname, c)  # TLS 1.3 tickets came later
        return plain

    def _remember(self, name: str, conn: TLSConnection) -> None:
        if self._closed:
            return
        session = conn.sslobj.session
        if session is not None and (session.has_ticket or conn.sslobj.version() == "TLSv1.2"):
            if len(self._sessions) >= SESSION_CACHE and name not in self._sessions:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[name] = session

    def remember_session(self, writer: FlowWriter) -> None:
        """Keep ``writer``'s session for resumption now (closing a client flow does it too).

        TLS 1.3 tickets arrive after the handshake, with the first data read.
        """
        conn = getattr(writer, "_conn", None)
        name = writer.get_extra_info("server_hostname")
        if isinstance(conn, TLSConnection) and name:
            self._remember(name, conn)

    def _require_stack(self) -> Stack:
        self._check()
        if self.stack is None:
            raise DeviceUnavailable("this TLS device has no stack: wrap flows with server()/client()")
        return self.stack

    async def start_server(self, handler: FlowHandler, port: int) -> Server:
        """Listen on ``port`` of the stack; ``handler(reader, writer)`` runs once a handshake succeeded.

        A failed handshake closes that connection alone (``stats`` counts it; the
        ``unik_tls`` logger reports it at debug level); the server goes on.
        """
        stack = self._require_stack()

        async def on_flow(reader: FlowReader, writer: FlowWriter) -> None:
            try:
                flow = await self.server(Flow(reader, writer))
            except TLSError as exc:
                log.debug("%s", exc)
                return
            except ConnectionError as exc:
                log.debug("TLS handshake: %s", exc)
                writer.close()
                return
            await handler(flow.reader, flow.writer)

        server = await stack.tcp.start_server(on_flow, port)
        self._servers.append(server)
        return server

    async def open_connection(self, host: str, port: int, server_hostname: str | None = None) -> Flow:
        """Connect to ``host:port`` over the stack and run a client handshake."""
        stack = self._require_stack()
        flow = await stack.tcp.connect(host, port)
        return await self.client(flow, server_hostname or host)

    async def disconnect(self) -> None:
        """Stop the servers started here; flows already open are left to their handlers."""
        if self._closed:
            return
        self._closed = True
        for server in self._servers:
            server.close()
        self._sessions.clear()

    def __repr__(self) -> str:
        names = sorted({n for p in self.config.pairs for n in p.names})
        return f"<OpenSSLTLS names={names} alpn={list(self.config.alpn)}>"
