"""A Xen image's life outside dom0: --emulate detached and stopped through the power button, --dry-run, inspect."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from example_support import write_app
from lifecycle_support import unik, wait_for_log
from xen_support import build

HELD_APP = '''\
"""Say a line, then run until stopped; say so when the life cycle announces the stop."""

import asyncio

from unik import lifecycle
from unik.devices import Console


async def start(console: Console) -> None:
    lifecycle.subscribe(lifecycle.SHUTDOWN_REQUESTED, lambda: console.log("shutdown requested"))
    console.log("held until stopped")
    await asyncio.Event().wait()
'''


@pytest.fixture(scope="module")
def held_xen(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An application that runs until stopped, built for xen."""
    root = write_app(tmp_path_factory.mktemp("held"), "held", HELD_APP)
    build(root)
    return root


def test_emulated_guest_runs_detached_and_stops_on_the_power_button(held_xen: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert unik(held_xen, "run", "-d", "--emulate", state=state).stdout == "held\n"
    wait_for_log(held_xen, "held", "held until stopped", state, timeout=180)
    record = json.loads(unik(held_xen, "ps", "--json", state=state).stdout)[0]
    assert record["target"] == "xen" and record["details"]["qemu_pid"] > 0
    unik(held_xen, "stop", "--timeout", "120", "held", state=state)
    log = unik(held_xen, "logs", "held", state=state).stdout
    assert "unik-init: the power button: stopping" in log
    assert log.index("shutdown requested") < log.index("unik-init: exit status 143")
    assert json.loads(unik(held_xen, "ps", "--json", state=state).stdout)[0]["shown_state"] == "exited (143)"


def test_dry_run_prints_the_xl_command_and_keeps_its_configuration(held_xen: Path, tmp_path: Path) -> None:
    out = unik(held_xen, "run", "--dry-run", state=tmp_path / "state").stdout
    words = shlex.split(out)
    assert words[1:3] == ["create", "-c"] and words[0].endswith("xl")
    config = Path(words[3])
    assert config.parent == held_xen / "dist" / "held-xen" and 'name = "held"' in config.read_text()
    emulated = shlex.split(unik(held_xen, "run", "--dry-run", "--emulate", state=tmp_path / "state").stdout)
    assert emulated[0].endswith("qemu-system-x86_64") and str(held_xen / "dist" / "held-xen" / "vmlinux") in emulated


def test_inspect_a_xen_image(held_xen: Path, tmp_path: Path) -> None:
    data = json.loads(unik(held_xen, "inspect", "--json", state=tmp_path / "state").stdout)
    kinds = {f["path"]: f["kind"] for f in data["files"]}
    assert kinds["vmlinux"] == "kernel" and kinds["held.xl"] == "artifact" and kinds["init"] == "init"
    assert kinds["app/held_app/__init__.py"] == "application"
    assert not [p for p, k in kinds.items() if k == "kernel module" and "virtio" in p]  # no NIC, no disk
