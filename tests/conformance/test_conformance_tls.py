"""unik-lib-tls's device passes the TLS suite: OpenSSL through memory BIOs over a plain flow."""

from __future__ import annotations

from pathlib import Path

import pytest
from unik.testing import TLSConformance, TLSPair
from unik_tls.certs import selfsigned, write_pair
from unik_tls.device import OpenSSLTLS


class TestOpenSSLTLS(TLSConformance):
    """A server with a self-signed certificate for conformance.test and a client trusting exactly it."""

    @pytest.fixture(autouse=True)
    def _certs(self, tmp_path: Path) -> None:
        cert, key = selfsigned(["conformance.test"])
        self.cert, self.key = tmp_path / "cert.pem", tmp_path / "key.pem"
        write_pair(cert, key, self.cert, self.key)

    async def pair(self) -> TLSPair:
        server = await OpenSSLTLS.connect(tls_cert=str(self.cert), tls_key=str(self.key))
        client = await OpenSSLTLS.connect(ca_file=str(self.cert))
        return TLSPair(server, client, "conformance.test")
