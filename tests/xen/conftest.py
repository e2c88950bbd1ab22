"""The xen suite's applications, each built once per session (vm_support, shared with tests/virtio)."""

from __future__ import annotations

from pathlib import Path

import pytest
import xen_nested as nested
from example_support import write_app
from unik.progress import Progress
from vm_support import app_fixture, build_for, example_fixture, tools_fixture
from xen_support import DEVICES_APP, STATUS_APP

TARGET = "xen"

tools = tools_fixture("xen")
hello_xen = example_fixture("hello_xen", TARGET, "hello")
status_xen = app_fixture("status_xen", TARGET, "status", STATUS_APP)  # exits with --status


@pytest.fixture(scope="session")
def devices_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An application with a NIC on bridge br7 and a disk file, built for xen."""
    root = write_app(tmp_path_factory.mktemp("devices"), "devices", DEVICES_APP)
    (root / "disk.img").write_bytes(b"\0" * (1 << 20))
    build_for(TARGET, root, "--net", "uplink=br7", "--block", f"storage={root / 'disk.img'}")
    return root


#: examples/http built for xen with its NIC on bridge br7 (--emulate puts it on QEMU's user network).
http_xen = example_fixture("http_xen", TARGET, "http", "--net", "service=br7")


@pytest.fixture(scope="session")
def xen_host(tools: None) -> nested.XenHost:
    """Xen 4.17, dom0's kernel and the toolstack, unpacked from Debian's packages (cached)."""
    return nested.prepare(Progress(quiet=True))
