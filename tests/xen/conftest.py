from __future__ import annotations

from pathlib import Path

import pytest
from example_support import copy_example, write_app
from example_support import missing_vm_tools as missing_tools
from unik.progress import Progress
from unik_xen import nested
from xen_support import DEVICES_APP, STATUS_APP, build


@pytest.fixture(scope="session")
def tools() -> None:
    """Skip when QEMU or the Debian tools are missing."""
    why = missing_tools()
    if why:
        pytest.skip(f"xen tests need QEMU and apt: {why}")


@pytest.fixture(scope="session")
def hello_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/hello configured and built for xen (once per session)."""
    root = copy_example("hello", tmp_path_factory.mktemp("hello"))
    build(root)
    return root


@pytest.fixture(scope="session")
def status_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An application that exits with --status, built for xen."""
    root = write_app(tmp_path_factory.mktemp("status"), "status", STATUS_APP)
    build(root)
    return root


@pytest.fixture(scope="session")
def devices_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An application with a NIC on bridge br7 and a disk file, built for xen."""
    root = write_app(tmp_path_factory.mktemp("devices"), "devices", DEVICES_APP)
    (root / "disk.img").write_bytes(b"\0" * (1 << 20))
    build(root, "--net", "uplink=br7", "--block", f"storage={root / 'disk.img'}")
    return root


@pytest.fixture(scope="session")
def http_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/http built for xen with its NIC on bridge br7 (--emulate puts it on QEMU's user network)."""
    root = copy_example("http", tmp_path_factory.mktemp("http"))
    build(root, "--net", "service=br7")
    return root


@pytest.fixture(scope="session")
def xen_host(tools: None) -> nested.XenHost:
    """Xen 4.17, dom0's kernel and the toolstack, unpacked from Debian's packages (cached)."""
    return nested.prepare(Progress(quiet=True))
