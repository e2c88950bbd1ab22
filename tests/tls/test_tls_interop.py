"""Interoperability with other TLS implementations, both directions.

unik's server against ``openssl s_client``, ``gnutls-cli`` and tlslite-ng's client;
unik's client against ``openssl s_server``, ``gnutls-serv`` and tlslite-ng's server.
Old protocols and weak suites offered by OpenSSL are refused.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from host_tools import needs
from tls_support import Certs, background, free_port, run, socket_tls, tls_server, tool, wait_port
from unik.devices import FlowReader, FlowWriter
from unik.errors import TLSHandshakeError
from unik_tls.device import OpenSSLTLS


async def reply_once(reader: FlowReader, writer: FlowWriter) -> None:
    """Answer one line with ``unik:<line>`` and close (close_notify)."""
    try:
        line = await reader.readline()
        writer.write(b"unik:" + line)
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


S_CLIENT = ["openssl", "s_client", "-brief", "-ign_eof", "-verify_return_error"]


@needs("openssl")
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client_to_unik(certs: Certs, version: str, tmp_path: Path) -> None:
    sess = tmp_path / "session.pem"

    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair(), certs.alt.pair()], alpn=["h2", "http/1.1"]) as tls, \
                tls_server(tls, reply_once) as port:
            base = [*S_CLIENT, "-connect", f"127.0.0.1:{port}", version, "-alpn", "http/1.1"]
            status, out = await tool(*base, "-servername", "localhost", "-CAfile", str(certs.main.cert),
                                     "-sess_out", str(sess), stdin=b"hello\n")
            assert status == 0, out
            assert "unik:hello" in out and "Verification: OK" in out
            assert f"Protocol version: TLSv1.{version[-1]}" in out
            # SNI: the other pair's certificate, verified against its own CA file.
            status, out = await tool(*base, "-servername", "b.test", "-CAfile", str(certs.alt.cert),
                                     stdin=b"sni\n")
            assert status == 0 and "CN = b.test" in out and "unik:sni" in out, out
            # Resumption from the saved session (a ticket).
            status, out = await tool(*[a for a in base if a != "-brief"], "-servername", "localhost",
                                     "-CAfile", str(certs.main.cert), "-sess_in", str(sess), stdin=b"again\n")
            assert status == 0 and "Reused, TLSv1." in out and "unik:again" in out, out
            assert tls.stats["server.resumed"] == 1
    run(main())


@needs("openssl")
def test_unik_refuses_old_protocols_and_weak_suites(certs: Certs) -> None:
    async def main() -> None:
        async with socket_tls(pairs=[certs.rsa.pair()]) as tls, tls_server(tls, reply_once) as port:
            base = [*S_CLIENT, "-connect", f"127.0.0.1:{port}", "-CAfile", str(certs.rsa.cert)]
            for proto in ("-tls1", "-tls1_1"):
                status, out = await tool(*base, proto, "-cipher", "DEFAULT:@SECLEVEL=0", stdin=b"x\n")
                assert status != 0 and "alert protocol version" in out, out
            for suite in ("AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384",
                          "DHE-RSA-AES128-GCM-SHA256", "AES256-SHA"):
                status, out = await tool(*base, "-tls1_2", "-cipher", suite, stdin=b"x\n")
                assert status != 0 and "alert handshake failure" in out, (suite, out)
            status, out = await tool(*base, "-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305", stdin=b"x\n")
            assert status == 0 and "Ciphersuite: ECDHE-RSA-CHACHA20-POLY1305" in out, out
            assert tls.stats["server.failed.TLSHandshakeError"] == 7
    run(main())


@needs("openssl")
def test_key_exchange_groups_are_mozillas_intermediate_ones(certs: Certs) -> None:
    """X25519, P-256 and P-384 are accepted; X448, P-521 and finite-field groups are refused, both versions."""
    async def main() -> None:
        # An RSA certificate: in TLS 1.2 an ECDSA one also needs its own curve among the client's groups.
        async with socket_tls(pairs=[certs.rsa.pair()]) as tls, tls_server(tls, reply_once) as port:
            base = [*S_CLIENT, "-connect", f"127.0.0.1:{port}", "-CAfile", str(certs.rsa.cert)]
            for version in ("-tls1_2", "-tls1_3"):
                for group, shown in (("X25519", "X25519"), ("P-256", "prime256v1"), ("P-384", "secp384r1")):
                    status, out = await tool(*base, version, "-groups", group, stdin=b"x\n")
                    assert status == 0 and "unik:x" in out and shown in out, (version, group, out)
                for group in ("X448", "P-521", "ffdhe2048"):
                    status, out = await tool(*base, version, "-groups", group, stdin=b"x\n")
                    assert status != 0 and "unik:x" not in out, (version, group, out)
        # unik's client offers the same groups: an OpenSSL server that only takes X448 refuses it.
        port = free_port()
        async with background("openssl", "s_server", "-accept", str(port), "-cert", str(certs.main.cert),
                              "-key", str(certs.main.key), "-groups", "X448", "-naccept", "1",
                              ready=b"ACCEPT"), socket_tls(cafile=str(certs.main.cert)) as tls:
            with pytest.raises(TLSHandshakeError):
                await tls.open_connection("127.0.0.1", port, "localhost")
    run(main())


@needs("openssl")
def test_unik_client_to_openssl_s_server(certs: Certs) -> None:
    port = free_port()

    async def main() -> None:
        async with background("openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(certs.rsa.cert),
                              "-key", str(certs.rsa.key), "-rev", "-alpn", "http/1.1", ready=b"ACCEPT"), \
                socket_tls(cafile=str(certs.rsa.cert), alpn=["http/1.1"]) as tls:
            for version in ("1.2", "1.3"):
                client = OpenSSLTLS.create(tls.stack, cafile=str(certs.rsa.cert), alpn=["http/1.1"],
                                           min_version=version, max_version=version)
                reader, writer = await client.open_connection("127.0.0.1", port, "localhost")
                assert writer.get_extra_info("tls_version") == f"TLSv{version}"
                assert writer.get_extra_info("alpn_protocol") == "http/1.1"
                writer.write(b"hello\n")
                assert await reader.readline() == b"olleh\n"
                writer.write(b"CLOSE\n")  # s_server's rev mode answers with close_notify: a clean EOF
                assert await reader.read() == b""
                writer.close()
            # Verification failure against a real server: the wrong name.
            with pytest.raises(TLSHandshakeError, match="Hostname mismatch"):
                await tls.open_connection("127.0.0.1", port, "example.org")
    run(main())


@needs("gnutls-cli")
@pytest.mark.parametrize("priority", ["NORMAL:-VERS-ALL:+VERS-TLS1.2", "NORMAL:-VERS-ALL:+VERS-TLS1.3"])
def test_gnutls_cli_to_unik(certs: Certs, priority: str) -> None:
    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()], alpn=["http/1.1"]) as tls, \
                tls_server(tls, reply_once) as port:
            status, out = await tool("gnutls-cli", "--x509cafile", str(certs.main.cert), "--port", str(port),
                                     "--alpn", "http/1.1", "--priority", priority, "localhost", stdin=b"hello\n")
            assert status == 0, out
            assert "The certificate is trusted" in out and "unik:hello" in out
            assert f"({priority[-6:]}" in out  # Description: (TLS1.x-X.509)-...
            assert "Application protocol: http/1.1" in out
            assert "Peer has closed the GnuTLS connection" in out  # our close_notify
    run(main())


@needs("gnutls-serv")
def test_unik_client_to_gnutls_serv(certs: Certs) -> None:
    port = free_port()

    async def main() -> None:
        async with background("gnutls-serv", "--echo", "-p", str(port), "--x509certfile", str(certs.main.cert),
                              "--x509keyfile", str(certs.main.key)), \
                socket_tls(cafile=str(certs.main.cert)) as tls:
            await wait_port(port)
            reader, writer = await tls.open_connection("127.0.0.1", port, "localhost")
            assert writer.get_extra_info("tls_version") == "TLSv1.3"
            writer.write(b"hello gnutls\n")
            assert await reader.readline() == b"hello gnutls\n"
            writer.close()
    run(main())


TLSLITE_CLIENT = r"""
import socket, sys
from tlslite import TLSConnection, HandshakeSettings
port, version = int(sys.argv[1]), sys.argv[2]
settings = HandshakeSettings()
settings.minVersion = settings.maxVersion = (3, 3) if version == "1.2" else (3, 4)
conn = TLSConnection(socket.create_connection(("127.0.0.1", port), timeout=20))
conn.handshakeClientCert(settings=settings, serverName="localhost", alpn=[bytearray(b"http/1.1")])
print("version", conn.version, "cipher", conn.getCipherName(), "alpn", bytes(conn.session.appProto).decode())
conn.write(b"hello tlslite\n")
data = b""
while True:
    chunk = conn.read()
    if not chunk:
        break
    data += bytes(chunk)
print(data.decode().strip(), "| closed cleanly:", conn.closed)
"""

TLSLITE_SERVER = r"""
import socket, sys
from tlslite import TLSConnection, HandshakeSettings, X509CertChain, parsePEMKey
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
chain = X509CertChain()
chain.parsePemList(open(cert).read())
private = parsePEMKey(open(key).read(), private=True)
srv = socket.create_server(("127.0.0.1", port))
print("ready", flush=True)
for _ in range(2):
    sock, _ = srv.accept()
    conn = TLSConnection(sock)
    conn.handshakeServer(certChain=chain, privateKey=private, settings=HandshakeSettings())
    line = bytes(conn.read())
    conn.write(b"tlslite:" + line)
    conn.close()
"""


def test_tlslite_ng_client_to_unik(certs: Certs) -> None:
    pytest.importorskip("tlslite", reason="needs tlslite-ng (pip install tlslite-ng; in requirements-dev.txt)")

    async def main() -> None:
        async with socket_tls(pairs=[certs.rsa.pair()], alpn=["http/1.1"]) as tls, \
                tls_server(tls, reply_once) as port:
            for version in ("1.2", "1.3"):
                status, out = await tool(sys.executable, "-c", TLSLITE_CLIENT, str(port), version, timeout=60)
                assert status == 0, out
                assert f"version {(3, 3) if version == '1.2' else (3, 4)}" in out and "alpn http/1.1" in out, out
                assert "unik:hello tlslite | closed cleanly: True" in out, out
    run(main())


def test_unik_client_to_tlslite_ng_server(certs: Certs) -> None:
    pytest.importorskip("tlslite", reason="needs tlslite-ng (pip install tlslite-ng; in requirements-dev.txt)")
    port = free_port()

    async def main() -> None:
        async with background(sys.executable, "-c", TLSLITE_SERVER, str(port), str(certs.rsa.cert),
                              str(certs.rsa.key), ready=b"ready"), socket_tls(cafile=str(certs.rsa.cert)) as tls:
            for version in ("1.2", "1.3"):
                client = OpenSSLTLS.create(tls.stack, cafile=str(certs.rsa.cert), min_version=version,
                                           max_version=version)
                reader, writer = await client.open_connection("127.0.0.1", port, "localhost")
                assert writer.get_extra_info("tls_version") == f"TLSv{version}"
                writer.write(b"hi\n")
                assert await asyncio.wait_for(reader.read(), 30) == b"tlslite:hi\n"  # then close_notify
                writer.close()
    run(main(), timeout=90)
