"""TLS flows in one process: unik's server and client on the socket stack and on unik's own TCP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl

import pytest
from tls_support import Certs, echo, memory_link, run, socket_tls, tls_server
from unik.devices import TLS, Flow, FlowReader, FlowWriter
from unik.errors import DeviceUnavailable, TLSCertificateError, TLSError
from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
from unik_tcpip.stack import TcpipStack
from unik_tls.device import OpenSSLTLS
from unik_tls.flow import TLSReader, TLSWriter


def test_device_satisfies_the_protocol_and_flows_are_streams(certs: Certs) -> None:
    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()], cafile=str(certs.main.cert)) as tls:
            assert isinstance(tls, TLS)
            async with tls_server(tls) as port:
                reader, writer = await tls.open_connection("127.0.0.1", port)
                assert isinstance(reader, FlowReader) and isinstance(writer, FlowWriter)
                assert isinstance(reader, TLSReader) and isinstance(writer, TLSWriter)
                assert writer.get_extra_info("tls_version") == "TLSv1.3"
                assert writer.get_extra_info("peername")[1] == port  # from the underlying flow
                assert isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
                writer.writelines([b"one ", b"two\n"])
                assert await reader.readline() == b"one two\n"
                writer.write(b"a:b:c\nrest")
                assert await reader.readuntil(b":") == b"a:"
                assert await reader.readexactly(3) == b"b:c"
                assert await reader.readline() == b"\n"
                writer.write_eof()  # close_notify: the server's echo loop sees EOF and closes
                assert await reader.read() == b"rest"
                assert reader.at_eof()
                assert await reader.read(10) == b""
                with pytest.raises(TLSError):
                    writer.write(b"late")
                writer.close()
                await writer.wait_closed()
            assert tls.stats["server.handshakes"] == 1 and tls.stats["client.handshakes"] == 1
    run(main())


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_bulk_both_directions_intact(certs: Certs, version: str) -> None:
    size = 8 << 20
    data = os.urandom(size)

    async def sink(reader: FlowReader, writer: FlowWriter) -> None:
        h, n = hashlib.sha256(), 0
        while chunk := await reader.read(1 << 16):
            h.update(chunk)
            n += len(chunk)
        writer.write(f"{n} {h.hexdigest()}\n".encode())
        for i in range(0, size, 50_000):  # odd-sized writes, batched into records by the writer
            writer.write(data[i:i + 50_000])
            await writer.drain()
        writer.close()

    async def main() -> None:
        async with socket_tls(pairs=[certs.rsa.pair()], cafile=str(certs.rsa.cert), min_version=version) as tls:
            tls.config.max_version = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
            async with tls_server(tls, sink) as port:
                reader, writer = await tls.open_connection("127.0.0.1", port, "localhost")
                assert writer.get_extra_info("tls_version") == f"TLSv{version}"
                view = memoryview(data)
                for i in range(0, size, 1 << 20):
                    writer.write(view[i:i + (1 << 20)])  # type: ignore[arg-type]  # any buffer, zero-copy
                    await writer.drain()
                writer.write_eof()
                summary = await reader.readline()
                assert summary == f"{size} {hashlib.sha256(data).hexdigest()}\n".encode()
                back = await reader.readexactly(size)
                assert back == data
                assert await reader.read() == b""  # close_notify, then EOF
                writer.close()
    run(main())


def test_sni_selects_the_pair_and_callback_overrides(certs: Certs) -> None:
    main_pair, alt, wild = certs.main.pair(), certs.alt.pair(), certs.wildcard.pair()
    chosen: list[str | None] = []

    def pick(name: str | None) -> object:
        chosen.append(name)
        return alt if name == "force-alt.test" else None

    async def subject_of(tls: OpenSSLTLS, port: int, name: str) -> str:
        client = OpenSSLTLS.create(tls.stack, verify=False)
        _, writer = await client.open_connection("127.0.0.1", port, name)
        cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        from cryptography import x509
        return x509.load_der_x509_certificate(cert).subject.rfc4514_string().split(",")[-1]

    async def main() -> None:
        async with socket_tls(pairs=[main_pair, alt, wild], sni_callback=pick) as tls, tls_server(tls) as port:
            assert await subject_of(tls, port, "b.test") == "CN=b.test"
            assert await subject_of(tls, port, "x.w.test") == "CN=*.w.test"
            assert await subject_of(tls, port, "unknown.test") == "CN=localhost"  # the default pair
            assert await subject_of(tls, port, "force-alt.test") == "CN=b.test"  # the callback's choice
        assert chosen == ["b.test", "x.w.test", "unknown.test", "force-alt.test"]
    run(main())


def test_alpn_and_session_resumption(certs: Certs) -> None:
    async def main() -> None:
        async with socket_tls(pairs=[certs.main.pair()], alpn=["h2", "http/1.1"]) as server_tls, \
                tls_server(server_tls) as port:
            for version in ("1.2", "1.3"):
                client = OpenSSLTLS.create(server_tls.stack, cafile=str(certs.main.cert), alpn=["http/1.1"],
                                           min_version=version, max_version=version)
                reused = []
                for _ in range(2):
                    reader, writer = await client.open_connection("127.0.0.1", port, "localhost")
                    assert writer.get_extra_info("alpn_protocol") == "http/1.1"
                    writer.write(b"ping\n")
                    assert await reader.readline() == b"ping\n"  # TLS 1.3 tickets arrive by now
                    reused.append(writer.get_extra_info("session_reused"))
                    writer.close()  # keeps the session (a TLS 1.3 ticket, read with the echo)
                assert reused == [False, True], version
            assert server_tls.stats["server.resumed"] == 2
    run(main())


def test_client_refuses_untrusted_expired_and_wrong_name(certs: Certs) -> None:
    async def attempt(server_pair: object, name: str, cafile: str) -> TLSCertificateError:
        async with socket_tls(pairs=[server_pair]) as tls, tls_server(tls) as port:  # type: ignore[list-item]
            client = OpenSSLTLS.create(tls.stack, cafile=cafile)
            with pytest.raises(TLSCertificateError) as info:
                await client.open_connection("127.0.0.1", port, name)
            await asyncio.sleep(0.05)
            assert tls.stats["server.failed.TLSHandshakeError"] == 1  # the server saw our alert
            # ... and goes on serving others.
            ok = OpenSSLTLS.create(tls.stack, verify=False)
            reader, writer = await ok.open_connection("127.0.0.1", port, "localhost")
            writer.write(b"still here\n")
            assert await reader.readline() == b"still here\n"
            writer.close()
            return info.value

    async def main() -> None:
        untrusted = await attempt(certs.main.pair(), "localhost", str(certs.alt.cert))
        assert "self-signed certificate" in str(untrusted) and untrusted.verify_code == 18
        expired = await attempt(certs.expired.pair(), "localhost", str(certs.expired.cert))
        assert expired.verify_code == 10 and "expired" in str(expired)
        wrong = await attempt(certs.main.pair(), "not-localhost.test", str(certs.main.cert))
        assert wrong.verify_code == 62 and "Hostname mismatch" in str(wrong)
        # The system CAs by default: a development certificate is not among them.
        async with socket_tls(pairs=[certs.main.pair()]) as tls, tls_server(tls) as port:
            with pytest.raises(TLSCertificateError):
                await OpenSSLTLS.create(tls.stack).open_connection("127.0.0.1", port, "localhost")
    run(main())


def test_configuration_errors_are_typed(certs: Certs, tmp_path: object) -> None:
    with pytest.raises(DeviceUnavailable, match="key does not match"):
        OpenSSLTLS.create(pairs=[type(certs.main.pair())(certs.main.cert.read_bytes(), certs.alt.key.read_bytes())])
    with pytest.raises(ValueError, match=r"use 1\.2 or 1\.3"):
        OpenSSLTLS.create(min_version="1.1")

    async def main() -> None:
        tls = OpenSSLTLS.create(verify=False)
        with pytest.raises(DeviceUnavailable, match="no certificate"):
            await tls.server(Flow(None, None))  # type: ignore[arg-type]
        with pytest.raises(DeviceUnavailable, match="no stack"):
            await tls.start_server(echo, 1)
    run(main())


def test_tls_over_unik_tcp_on_a_memory_link(certs: Certs) -> None:
    """The same flows over unik-lib-tcpip's TCP: a server and a client stack on one link."""
    data = os.urandom(1 << 20)

    async def main() -> None:
        net_a, net_b = memory_link()
        stacks = [await TcpipStack.connect(net, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(), ipv4=ip)
                  for net, ip in ((net_a, "10.9.0.1/24"), (net_b, "10.9.0.2/24"))]
        server_tls = OpenSSLTLS.create(stacks[0], pairs=[certs.main.pair()])
        client_tls = OpenSSLTLS.create(stacks[1], verify=False)

        async def serve(reader: FlowReader, writer: FlowWriter) -> None:
            got = await reader.readexactly(len(data))
            writer.write(hashlib.sha256(got).digest())
            writer.close()

        try:
            await server_tls.start_server(serve, 4433)
            reader, writer = await client_tls.open_connection("10.9.0.1", 4433, "localhost")
            writer.write(data)
            await writer.drain()
            assert await reader.readexactly(32) == hashlib.sha256(data).digest()
            assert await reader.read() == b""
            writer.close()
        finally:
            await server_tls.disconnect()
            for stack in stacks:
                await stack.disconnect()
    run(main())
