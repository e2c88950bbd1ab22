"""The ``tls`` device in the composer, its certificate sources, and ``unik tls selfsigned``."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from tls_support import UNIK, Certs, run, socket_tls, tls_server
from unik import lifecycle
from unik.errors import ConfigError, DeviceUnavailable
from unik.kv import BakedKVRO
from unik.plan import Plan
from unik.testing import PluginRegistry
from unik_tls.device import OpenSSLTLS
from unik_unix.socket_stack import SocketStack

APP = '''
from unik.devices import TLS, Stack

async def start(stack: Stack, tls: TLS, *, port: int = 8443) -> None:
    server = await tls.start_server(lambda r, w: None, port)
'''


def make_app(root: Path, toml: str) -> Path:
    (root / "src" / "tapp").mkdir(parents=True)
    (root / "src" / "tapp" / "__init__.py").write_text(APP)
    (root / "pyproject.toml").write_text(textwrap.dedent('''
        [project]
        name = "tapp"
        version = "0.1.0"
        [tool.unik]
        main = "tapp:start"
    ''') + textwrap.dedent(toml))
    return root


def compose(root: Path, **keys: list[str]) -> Plan:
    return PluginRegistry(entry_points=True).project(root).compose("unix", {"net": ["socket"], **keys})


def test_files_provider_bakes_the_pair_and_reads_keys_at_run_time(tmp_path: Path, certs: Certs) -> None:
    shutil.copytree(certs.main.cert.parent, tmp_path / "certs")
    plan = compose(make_app(tmp_path, '''
        [tool.unik.devices.tls]
        cert = "certs/cert.pem"
        key = "certs/key.pem"
        alpn = "h2,http/1.1"
    '''))
    node = plan.node("tls")
    assert (node.provider, node.distribution, node.implementation) == \
        ("tls.files", "unik-lib-tls", "unik_tls.device:OpenSSLTLS")
    assert node.deps == {"stack": "stack"}
    assert node.options["cert_file"] == "tls/tls/cert.pem" and node.options["key_file"] == "tls/tls/key.pem"
    assert node.options["alpn"] == "h2,http/1.1" and node.options["min_version"] == "1.2"
    assert set(node.key_options) == {"tls_cert", "tls_key"}
    assert {f.dest for f in plan.files} == {"tls/tls/cert.pem", "tls/tls/key.pem"}
    assert any("private key is baked" in n for n in node.notes)
    assert [n.name for n in plan.nodes].index("stack") < [n.name for n in plan.nodes].index("tls")
    # --tls-cert at configure time picks the files provider without a table.
    plan = compose(make_app(tmp_path / "other", ""), tls_cert=["/etc/x.pem"], tls_key=["/etc/y.pem"])
    assert plan.node("tls").provider == "tls.files" and not plan.files


def test_kv_provider_takes_its_pairs_from_a_store(tmp_path: Path, certs: Certs) -> None:
    shutil.copytree(certs.main.cert.parent, tmp_path / "certs")
    plan = compose(make_app(tmp_path, '''
        [tool.unik.devices.certs]
        kind = "kv_ro"
        source = "certs"
        [tool.unik.devices.tls]
        store = true
        handshake_timeout = 5.0
    '''))
    node = plan.node("tls")
    assert node.provider == "tls.kv" and node.deps == {"stack": "stack", "certs": "certs"}
    assert plan.node("certs").provider == "unik.baked-kv"
    assert node.options["handshake_timeout"] == 5.0
    assert "store" not in node.options
    # Without a table the device takes its pair from --tls-cert/--tls-key, or is a client.
    bare = compose(make_app(tmp_path / "bare", ""))
    assert bare.node("tls").provider == "tls.files" and [n.name for n in bare.nodes] == ["stack", "tls"]


@pytest.mark.parametrize(("table", "message"), [
    ('cert = "certs/missing.pem"\nkey = "certs/key.pem"', "does not exist"),
    ('cert = "certs/cert.pem"', "cert and key go together"),
    ('cert = "certs/cert.pem"\nkey = "certs/key.pem"\nmin_version = "1.1"', 'use "1.2" or "1.3"'),
    ('cert = "certs/cert.pem"\nkey = "certs/key.pem"\nhandshake_timeout = 0.0', "between 0 and 600"),
    ('cert = "certs/cert.pem"\nkey = "certs/key.pem"\nciphers = "RC4"', "unknown key"),
    ('client_only = true\ncert = "certs/cert.pem"\nkey = "certs/key.pem"', "takes no cert"),
])
def test_configuration_errors_name_the_table_and_key(tmp_path: Path, certs: Certs, table: str, message: str) -> None:
    shutil.copytree(certs.main.cert.parent, tmp_path / "certs")
    root = make_app(tmp_path, "[tool.unik.devices.tls]\n" + table + "\n")
    with pytest.raises(ConfigError) as info:
        compose(root)
    assert "[tool.unik.devices.tls]" in str(info.value) and message in str(info.value)
    if "does not exist" in message:
        assert "unik tls selfsigned -o certs" in str(info.value)


def test_connect_from_a_store_with_sni_pairs_and_a_ca(tmp_path: Path, certs: Certs) -> None:
    store = tmp_path / "store"
    shutil.copytree(certs.main.cert.parent, store)
    shutil.copytree(certs.alt.cert.parent, store / "b")
    (store / "ca.pem").write_bytes(certs.main.cert.read_bytes() + certs.alt.cert.read_bytes())
    (store / "notes").mkdir()  # a directory without a pair is ignored

    async def main() -> None:
        stack = await SocketStack.connect("127.0.0.1/8")
        tls = await OpenSSLTLS.connect(stack, BakedKVRO(store), alpn="http/1.1")
        assert [p.names for p in tls.config.pairs] == [("localhost", "127.0.0.1"), ("b.test",)]
        async with tls_server(tls) as port:
            for name in ("localhost", "b.test"):  # both verified through the store's ca.pem
                reader, writer = await tls.open_connection("127.0.0.1", port, name)
                writer.write(b"ok\n")
                assert await reader.readline() == b"ok\n"
                writer.close()
        await tls.disconnect()
        # Before a sandbox seals the process, a device with a CA makes its client context
        # (reading the CA while it can); one without leaves it to the first connection.
        fresh = await OpenSSLTLS.connect(stack, BakedKVRO(store))
        plain = await OpenSSLTLS.connect(stack, tls_cert=str(certs.main.cert), tls_key=str(certs.main.key))
        lifecycle.announce(lifecycle.BEFORE_SEAL)
        assert fresh._client_ctx is not None and plain._client_ctx is None
        lifecycle.reset()
        with pytest.raises(DeviceUnavailable, match=r"holds no cert\.pem"):
            await OpenSSLTLS.connect(stack, BakedKVRO(store / "notes"))
        with pytest.raises(DeviceUnavailable, match="go together"):
            await OpenSSLTLS.connect(stack, tls_cert=str(certs.main.cert))
        with pytest.raises(DeviceUnavailable, match="cannot read"):
            await OpenSSLTLS.connect(stack, tls_cert=str(tmp_path / "nope.pem"), tls_key=str(certs.main.key))
        # Host paths (--tls-cert/--tls-key) win over the store's default pair.
        both = await OpenSSLTLS.connect(stack, BakedKVRO(store), tls_cert=str(certs.rsa.cert),
                                        tls_key=str(certs.rsa.key))
        assert both.config.pairs[0].label == str(certs.rsa.cert) and len(both.config.pairs) == 3
        await stack.disconnect()
    run(main())


def test_unik_tls_selfsigned(tmp_path: Path) -> None:
    out = subprocess.run([UNIK, "tls", "selfsigned", "-o", str(tmp_path / "c"), "-n", "app.test", "-n", "10.1.2.3",
                          "--days", "5", "--key-type", "rsa"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "app.test, 10.1.2.3, 5 days" in out.stdout
    cert_path, key_path = tmp_path / "c" / "cert.pem", tmp_path / "c" / "key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=5, hours=1)
    assert cert.public_key().key_size == 3072  # type: ignore[union-attr]
    assert b"PRIVATE KEY" in key_path.read_bytes()
    again = subprocess.run([UNIK, "tls", "selfsigned", "-o", str(tmp_path / "c")], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 1 and "exists (use --force" in again.stderr
    paths = subprocess.run([UNIK, "tls", "selfsigned", "--cert", str(tmp_path / "x.crt"), "--key",
                            str(tmp_path / "x.key")], capture_output=True, text=True, timeout=60)
    assert paths.returncode == 0 and (tmp_path / "x.crt").exists() and (tmp_path / "x.key").exists()

    async def main() -> None:  # the default pair (localhost, 127.0.0.1) serves a verifying client
        from unik_tls.config import CertPair
        async with socket_tls(pairs=[CertPair.from_files(tmp_path / "x.crt", tmp_path / "x.key")],
                              cafile=str(tmp_path / "x.crt")) as tls, tls_server(tls) as port:
            reader, writer = await tls.open_connection("127.0.0.1", port)
            writer.write(b"verified\n")
            assert await reader.readline() == b"verified\n"
            writer.close()
    run(main())


def test_vm_images_get_ssl_and_the_ca_bundle(tmp_path: Path, certs: Certs) -> None:
    import ssl

    from unik_tls import plugin

    shutil.copytree(certs.main.cert.parent, tmp_path / "certs")
    plan = compose(make_app(tmp_path, '[tool.unik.devices.tls]\ncert = "certs/cert.pem"\nkey = "certs/key.pem"\n'))
    contents = plugin.unik_image_contents(plan)
    assert contents is not None and "ssl" in contents.python_modules
    cafile = ssl.get_default_verify_paths().cafile
    if cafile and Path(cafile).is_file():
        assert Path(contents.files[cafile]).read_bytes() == Path(cafile).read_bytes()
    without = PluginRegistry(entry_points=True).project(make_app(tmp_path / "plain", "")).compose(
        "unix", {"net": ["socket"], "tls_cert": [str(certs.main.cert)], "tls_key": [str(certs.main.key)]})
    assert plugin.unik_image_contents(without) is not None  # still TLS, with host paths
    bare = tmp_path / "bare"
    (bare / "src" / "bapp").mkdir(parents=True)
    (bare / "src" / "bapp" / "__init__.py").write_text("async def start() -> None:\n    pass\n")
    (bare / "pyproject.toml").write_text('[project]\nname = "bapp"\nversion = "0.1.0"\n'
                                         '[tool.unik]\nmain = "bapp:start"\n')
    assert plugin.unik_image_contents(PluginRegistry(entry_points=True).project(bare).compose("unix", {})) is None
