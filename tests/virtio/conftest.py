from __future__ import annotations

from pathlib import Path

import pytest
from example_support import copy_example, write_app
from example_support import missing_vm_tools as missing_tools
from virtio_support import DISK_APP, PING_APP, STATUS_APP, build


@pytest.fixture(scope="session")
def tools() -> None:
    """Skip when QEMU or the Debian tools are missing."""
    why = missing_tools()
    if why:
        pytest.skip(f"virtio boot tests need QEMU and apt: {why}")


@pytest.fixture(scope="session")
def hello_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/hello configured and built for virtio (once per session)."""
    root = copy_example("hello", tmp_path_factory.mktemp("hello"))
    build(root)
    return root


@pytest.fixture(scope="session")
def status_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app with an entropy device (virtio-rng: modules, devtmpfs) that exits with --status."""
    root = write_app(tmp_path_factory.mktemp("status"), "status", STATUS_APP)
    build(root)
    return root


@pytest.fixture(scope="session")
def disk_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app with a block device (virtio-blk: modules, devtmpfs, sysfs)."""
    root = write_app(tmp_path_factory.mktemp("disk"), "disk", DISK_APP)
    build(root)
    return root


@pytest.fixture(scope="session")
def http_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/http for virtio on TAP tapv0, with no --ipv4 (DHCP; tests give --ipv4 to `unik run`)."""
    root = copy_example("http", tmp_path_factory.mktemp("http"))
    build(root, "--net", "service=tapv0")
    return root


@pytest.fixture(scope="session")
def ping_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app with a network device (virtio-net, the TPACKET_V3 ring)."""
    root = write_app(tmp_path_factory.mktemp("ping"), "ping", PING_APP)
    build(root)
    return root
