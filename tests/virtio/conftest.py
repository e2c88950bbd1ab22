"""The virtio suite's applications, each built once per session (vm_support, shared with tests/xen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from virtio_support import DISK_APP, PING_APP, STATUS_APP
from vm_support import built_app, built_example, require_vm_tools

TARGET = "virtio"


@pytest.fixture(scope="session")
def tools() -> None:
    """Skip when QEMU or the Debian tools are missing."""
    require_vm_tools("virtio boot")


@pytest.fixture(scope="session")
def hello_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/hello configured and built for virtio (once per session)."""
    return built_example(TARGET, "hello", tmp_path_factory)


@pytest.fixture(scope="session")
def status_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app with an entropy device (virtio-rng: modules, devtmpfs) that exits with --status."""
    return built_app(TARGET, "status", STATUS_APP, tmp_path_factory)


@pytest.fixture(scope="session")
def disk_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app with a block device (virtio-blk: modules, devtmpfs, sysfs)."""
    return built_app(TARGET, "disk", DISK_APP, tmp_path_factory)


@pytest.fixture(scope="session")
def http_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/http for virtio on TAP tapv0, with no --ipv4 (DHCP; tests give --ipv4 to `unik run`)."""
    return built_example(TARGET, "http", tmp_path_factory, "--net", "service=tapv0")


@pytest.fixture(scope="session")
def ping_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app with a network device (virtio-net, the TPACKET_V3 ring)."""
    return built_app(TARGET, "ping", PING_APP, tmp_path_factory)


@pytest.fixture(scope="session")
def deploy_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/http built once with every --image form and a static address (deploy_support's 10.97.0.2)."""
    from deploy_support import GUEST

    return built_example(TARGET, "http", tmp_path_factory, "--ipv4", f"{GUEST}/24", "--image", "disk,qcow2,gce")
