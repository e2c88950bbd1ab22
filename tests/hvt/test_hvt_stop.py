"""A graceful stop of an hvt unikernel: unik stop's SIGTERM reaches CPython inside as SHUTDOWN_REQUESTED.

examples/kv with ``sync = false`` writes its store only when its devices disconnect, so
a clean FAT disk holding the key after ``unik stop`` shows the stop went through the
application's life cycle (cancel, disconnect in reverse order, flush); the control is
a killed instance, whose writes are lost.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from hvt_support import needs_build_tools, needs_kvm
from lifecycle_support import (
    blank_disk,
    built_held_kv,
    fat_tools_missing,
    fsck_clean,
    mtype,
    on_disk,
    unik,
    wait_for_log,
)


@pytest.fixture(scope="module")
def kv_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/kv (store flushed only on disconnect) built for hvt."""
    needs_kvm()
    needs_build_tools()
    why = fat_tools_missing()
    if why:
        pytest.skip(why)
    return built_held_kv(tmp_path_factory.mktemp("kv"), "hvt")


def test_unik_stop_is_graceful_inside_the_unikernel(kv_app: Path, tmp_path: Path) -> None:
    state, disk = tmp_path / "state", blank_disk(kv_app, "graceful.img")
    unik(kv_app, "run", "-d", "--name", "store", "--block", f"storage={disk}", "--hold", "--key", "greeting",
         "--value", "hello there", state=state)
    log = wait_for_log(kv_app, "store", "holding the store open", state, timeout=60)
    assert "boot #1" in log and "greeting = hello there" in log
    stopped = unik(kv_app, "stop", "store", state=state)
    assert "store stopped" in stopped.stderr
    assert "exited (143)" in unik(kv_app, "ps", state=state).stdout
    fsck_clean(disk)
    assert mtype(disk, "/kv/greeting") == "hello there"
    assert mtype(disk, "/kv/meta/boots") == "1"
    unik(kv_app, "rm", "store", state=state)


def test_a_killed_unikernel_loses_its_unflushed_writes(kv_app: Path, tmp_path: Path) -> None:
    """The control: SIGKILL on the monitor gives the guest no chance to flush."""
    state, disk = tmp_path / "state", blank_disk(kv_app, "killed.img")
    unik(kv_app, "run", "-d", "--name", "lost", "--block", f"storage={disk}", "--hold", "--key", "greeting",
         "--value", "lost", state=state)
    wait_for_log(kv_app, "lost", "holding the store open", state, timeout=60)
    record = {i["name"]: i for i in json.loads(unik(kv_app, "ps", "--json", state=state).stdout)}["lost"]
    os.kill(int(record["details"]["child_pid"]), signal.SIGKILL)
    unik(kv_app, "stop", "lost", state=state, check=False)
    assert not on_disk(disk, "/kv/greeting")
    fsck_clean(disk)
    unik(kv_app, "rm", "lost", state=state)
