"""Test helpers for plugin authors: register a plugin without installing it.

Use in a ``conftest.py``::

    pytest_plugins = ["unik.testing"]

    def test_my_target(unik_plugins):
        unik_plugins.register(my_plugin_module, name="mine")
        assert "mine" in unik_plugins.targets()

The fixture's manager loads no entry points unless asked, so a test sees exactly the
plugins it registered (plus the core's own providers).

A provider is checked against its device protocol by a conformance suite
(:mod:`unik.conformance`, re-exported here): ``class TestMine(BlockConformance)`` with an
``async def connect(self)`` runs every check of the ``Block`` protocol against it.  To test discovery itself —
or a plugin that must be found by the ``unik`` command — :func:`install_entry_point`
writes distribution metadata that ``importlib.metadata`` finds, without pip.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conformance import (
    BlockConformance,
    ConsoleConformance,
    DeviceConformance,
    EntropySourceConformance,
    FileSystemConformance,
    KVROConformance,
    KVRWConformance,
    MonotonicClockConformance,
    NetworkConformance,
    NetworkPeer,
    RandomConformance,
    SleepConformance,
    StackConformance,
    StackPair,
    TLSConformance,
    TLSPair,
    WallClockConformance,
)
from .plugins import PluginManager
from .progress import Progress
from .project import Project

__all__ = [
    "BlockConformance", "ConsoleConformance", "DeviceConformance", "EntropySourceConformance",
    "FileSystemConformance", "KVROConformance", "KVRWConformance", "MonotonicClockConformance",
    "NetworkConformance", "NetworkPeer", "PluginRegistry", "RandomConformance", "SleepConformance",
    "StackConformance", "StackPair", "TLSConformance", "TLSPair", "WallClockConformance",
    "install_entry_point", "network_namespace", "tap_unavailable", "unik_installed_plugins", "unik_plugins",
]


class PluginRegistry(PluginManager):
    """A :class:`PluginManager` for tests, with a shorter :meth:`register`."""

    def __init__(self, entry_points: bool = False, env: dict[str, str] | None = None) -> None:
        self.warnings: list[str] = []
        super().__init__(entry_points=entry_points, env=env or {}, warn=self.warnings.append)

    def add(self, plugin: ModuleType | Any, name: str | None = None) -> PluginRegistry:
        """Register ``plugin`` (a module or object with hook implementations); chainable."""
        label = name or str(getattr(plugin, "__name__", type(plugin).__name__))
        self.register(plugin, name=label, distribution=label)
        return self

    def project(self, root: Path, quiet: bool = True) -> Project:
        """A :class:`Project` for the application at ``root`` using these plugins."""
        return Project(root / "pyproject.toml", self, Progress(quiet=quiet))


def install_entry_point(
    directory: Path, distribution: str, name: str, value: str, version: str = "0.1.0",
    top_level: Sequence[str] = (),
) -> Path:
    """Make ``directory`` hold a distribution whose ``unik`` entry point is ``name = value``.

    Put ``directory`` on ``sys.path`` (``monkeypatch.syspath_prepend``) for the plugin
    manager, or on ``PYTHONPATH`` for a ``unik`` subprocess, to find it.  ``top_level``
    names the import packages the distribution owns, for emitters that bundle them.
    """
    info = directory / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[unik]\n{name} = {value}\n")
    if top_level:
        (info / "top_level.txt").write_text("".join(f"{t}\n" for t in top_level))
    return info


def tap_unavailable() -> str | None:
    """Why tests cannot make TAP devices in network namespaces here (``None``: they can)."""
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) for TAP devices and network namespaces"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun (modprobe tun)"
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR))
    except OSError as exc:
        return f"needs a usable /dev/net/tun: opening it failed: {exc.strerror}"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    return None


@contextmanager
def network_namespace(prefix: str = "unik", ipv6: bool = False) -> Iterator[str]:
    """A new network namespace ``<prefix>-<random>``, deleted afterwards, whatever happens.

    The test is skipped, with the reason, when the namespace cannot be made.  IPv6 is
    off unless asked for, so interfaces moved in send no router solicitations or MLD.
    """
    name = f"{prefix}-{secrets.token_hex(4)}"
    added = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if added.returncode:
        pytest.skip(f"cannot create network namespaces (ip netns add): {added.stderr.strip()}")
    try:
        if not ipv6:
            subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1",
                            "net.ipv6.conf.all.disable_ipv6=1"], capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def unik_plugins() -> Iterator[PluginRegistry]:
    """A plugin manager with no entry-point plugins; register yours with ``.add``."""
    yield PluginRegistry()


@pytest.fixture
def unik_installed_plugins() -> Iterator[PluginRegistry]:
    """A plugin manager that loads the installed entry-point plugins."""
    yield PluginRegistry(entry_points=True)


def write_ca_and_leaf(directory: Path, names: Sequence[str]) -> None:
    """``ca.pem`` (a test CA) and ``cert.pem``/``key.pem`` for ``names``, signed by it (needs cryptography)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unik test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
