"""The xen suite's applications, each built once per session (vm_support, shared with tests/virtio)."""

from __future__ import annotations

from pathlib import Path

import pytest
import xen_nested as nested
from example_support import write_app
from unik.progress import Progress
from vm_support import build_for, built_app, built_example, require_vm_tools
from xen_support import DEVICES_APP, STATUS_APP

TARGET = "xen"


@pytest.fixture(scope="session")
def tools() -> None:
    """Skip when QEMU or the Debian tools are missing."""
    require_vm_tools("xen")


@pytest.fixture(scope="session")
def hello_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/hello configured and built for xen (once per session)."""
    return built_example(TARGET, "hello", tmp_path_factory)


@pytest.fixture(scope="session")
def status_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An application that exits with --status, built for xen."""
    return built_app(TARGET, "status", STATUS_APP, tmp_path_factory)


@pytest.fixture(scope="session")
def devices_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An application with a NIC on bridge br7 and a disk file, built for xen."""
    root = write_app(tmp_path_factory.mktemp("devices"), "devices", DEVICES_APP)
    (root / "disk.img").write_bytes(b"\0" * (1 << 20))
    build_for(TARGET, root, "--net", "uplink=br7", "--block", f"storage={root / 'disk.img'}")
    return root


@pytest.fixture(scope="session")
def http_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/http built for xen with its NIC on bridge br7 (--emulate puts it on QEMU's user network)."""
    return built_example(TARGET, "http", tmp_path_factory, "--net", "service=br7")


@pytest.fixture(scope="session")
def xen_host(tools: None) -> nested.XenHost:
    """Xen 4.17, dom0's kernel and the toolstack, unpacked from Debian's packages (cached)."""
    return nested.prepare(Progress(quiet=True))
