"""unik run -d, ps, logs, stop, rm and run --dry-run on the unix target, with real processes."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from example_support import copy_example, write_app
from lifecycle_support import (
    UNIK,
    blank_disk,
    built_held_kv,
    fat_tools_missing,
    fsck_clean,
    instances,
    mdir,
    mtype,
    on_disk,
    unik,
    wait_for_log,
)
from unik.instances import process_start

pytest.importorskip("unik_unix", reason="the unix target is not installed")

BLOCKING_APP = '''\
"""Blocks its event loop: no signal handler can run, so only a kill stops it."""

import time

from unik.devices import Console


async def start(console: Console) -> None:
    console.log("blocking")
    time.sleep(600)
'''


@pytest.fixture(scope="module")
def kv_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/kv (store flushed only on disconnect) built for unix."""
    return built_held_kv(tmp_path_factory.mktemp("kv"), "unix")


def test_detached_kv_is_listed_logged_and_stopped_with_its_disk_flushed(kv_app: Path, tmp_path: Path) -> None:
    why = fat_tools_missing()
    if why:
        pytest.skip(why)
    state, disk = tmp_path / "state", blank_disk(kv_app, "graceful.img")
    started = unik(kv_app, "run", "-d", "--name", "store", "--block", f"storage={disk}", "--hold",
                   "--key", "greeting", "--value", "hello there", state=state)
    assert started.stdout == "store\n"
    log = wait_for_log(kv_app, "store", "holding the store open", state, timeout=60)
    assert "boot #1" in log and "greeting = hello there" in log
    table = unik(kv_app, "ps", state=state).stdout
    header, line = table.splitlines()
    assert header.split() == ["NAME", "TARGET", "STATE", "PID/DOMAIN", "UPTIME", "ADDRESSES", "PORTS"]
    record = instances(kv_app, state)["store"]
    assert line.split()[:4] == ["store", "unix", "running", str(record["pid"])]
    assert record["detached"] is True and record["options"]["key"] == ["greeting"]  # type: ignore[index]
    child = record["details"]["child_pid"]  # type: ignore[index]
    assert process_start(child) is not None

    stopped = unik(kv_app, "stop", "store", state=state)
    assert "store stopped" in stopped.stderr
    assert process_start(child) is None
    assert instances(kv_app, state)["store"]["shown_state"] == "exited (143)"
    assert "exited (143)" in unik(kv_app, "ps", state=state).stdout
    fsck_clean(disk)
    assert mtype(disk, "/kv/greeting") == "hello there"
    assert mtype(disk, "/kv/meta/boots") == "1"
    assert "greeting" in mdir(disk, "/kv")

    refused = unik(kv_app, "rm", "nosuch", state=state, check=False)
    assert refused.returncode == 1 and "no instance 'nosuch' (instances: store)" in refused.stderr
    unik(kv_app, "rm", "store", state=state)
    assert instances(kv_app, state) == {}


def test_a_crashed_supervisor_reads_as_exited_and_its_unflushed_writes_are_lost(kv_app: Path, tmp_path: Path) -> None:
    """The control for the test above: without the graceful stop the store never reaches the disk."""
    why = fat_tools_missing()
    if why:
        pytest.skip(why)
    state, disk = tmp_path / "state", blank_disk(kv_app, "killed.img")
    unik(kv_app, "run", "-d", "--block", f"storage={disk}", "--hold", "--key", "greeting", "--value", "lost",
         state=state)
    wait_for_log(kv_app, "kv", "holding the store open", state, timeout=60)
    record = instances(kv_app, state)["kv"]
    os.killpg(int(record["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
    deadline = time.monotonic() + 10
    while instances(kv_app, state)["kv"]["shown_state"] != "exited (unknown)":
        assert time.monotonic() < deadline, instances(kv_app, state)
        time.sleep(0.1)
    assert "exited (unknown)" in unik(kv_app, "ps", state=state).stdout
    assert "not running" in unik(kv_app, "stop", "kv", state=state).stderr
    assert not on_disk(disk, "/kv/greeting")
    fsck_clean(disk)  # the blank disk's format was flushed; nothing after it
    unik(kv_app, "rm", "kv", state=state)


def test_names_are_unique_and_rm_refuses_a_running_instance(kv_app: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    disks = [blank_disk(kv_app, f"n{i}.img") for i in range(2)]
    names = [unik(kv_app, "run", "-d", "--block", f"storage={d}", "--hold", state=state).stdout.strip()
             for d in disks]
    assert names == ["kv", "kv-2"]
    taken = unik(kv_app, "run", "-d", "--name", "kv", "--block", f"storage={disks[0]}", state=state, check=False)
    assert taken.returncode == 1 and "the name 'kv' is taken" in taken.stderr
    bad = unik(kv_app, "run", "-d", "--name", "Bad Name", "--block", f"storage={disks[0]}", state=state, check=False)
    assert bad.returncode == 1 and "--name 'Bad Name'" in bad.stderr
    for name in names:
        wait_for_log(kv_app, name, "holding", state, timeout=60)
    refused = unik(kv_app, "rm", "kv", state=state, check=False)
    assert refused.returncode == 1 and "kv is running: stop it first" in refused.stderr
    pid = int(instances(kv_app, state)["kv"]["pid"])  # type: ignore[call-overload]
    unik(kv_app, "rm", "-f", "kv", state=state)
    assert process_start(pid) is None
    unik(kv_app, "stop", "kv-2", state=state)
    unik(kv_app, "rm", "kv-2", state=state)
    assert instances(kv_app, state) == {}


def test_a_foreground_run_is_listed_while_it_runs_and_stops_gracefully(kv_app: Path, tmp_path: Path) -> None:
    state, disk = tmp_path / "state", blank_disk(kv_app, "fg.img")
    proc = subprocess.Popen([UNIK, "run", "--block", f"storage={disk}", "--hold"], cwd=kv_app,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, XDG_STATE_HOME=str(state)))
    try:
        deadline = time.monotonic() + 60
        while instances(kv_app, state).get("kv", {}).get("state") != "running":
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        record = instances(kv_app, state)["kv"]
        assert record["pid"] == proc.pid and record["detached"] is False
        logs = unik(kv_app, "logs", "kv", state=state, check=False)
        assert logs.returncode == 1 and "runs in the foreground" in logs.stderr
        time.sleep(1.0)  # let the application reach its hold
        unik(kv_app, "stop", "kv", state=state)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143 and "holding the store open" in out
    assert instances(kv_app, state) == {}


def test_stop_kills_an_application_that_does_not_stop(tmp_path: Path) -> None:
    app = write_app(tmp_path, "stuck", BLOCKING_APP)
    state = tmp_path / "state"
    unik(app, "configure", "-t", "unix", state=state)
    assert unik(app, "run", "-d", state=state).stdout == "stuck\n"
    wait_for_log(app, "stuck", "blocking", state, timeout=60)
    child = instances(app, state)["stuck"]["details"]["child_pid"]  # type: ignore[index]
    out = unik(app, "stop", "--timeout", "1", "stuck", state=state)
    assert "did not stop within 1 s: killed" in out.stderr
    assert instances(app, state)["stuck"]["shown_state"] == "exited (137)"
    assert process_start(child) is None
    unik(app, "rm", "stuck", state=state)


def test_logs_follow_until_the_instance_ends(tmp_path: Path) -> None:
    app = copy_example("hello", tmp_path)
    state = tmp_path / "state"
    unik(app, "configure", "-t", "unix", state=state)
    unik(app, "run", "-d", state=state)
    followed = unik(app, "logs", "-f", "hello", state=state, timeout=60)
    assert followed.stdout.count("hello") >= 4
    assert instances(app, state)["hello"]["shown_state"] == "exited (0)"
    assert unik(app, "rm", "hello", state=state).returncode == 0


def test_an_application_that_fails_at_once_shows_its_error_in_logs_and_ps(kv_app: Path, tmp_path: Path) -> None:
    state, empty = tmp_path / "state", kv_app / "empty.img"
    empty.write_bytes(b"")  # there, so `unik run` starts it; empty, so the application fails as it connects
    unik(kv_app, "run", "-d", "--block", f"storage={empty}", state=state)
    deadline = time.monotonic() + 30
    while instances(kv_app, state)["kv"]["state"] != "exited":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert instances(kv_app, state)["kv"]["shown_state"] == "exited (1)"
    assert f"{empty} is empty" in unik(kv_app, "logs", "kv", state=state).stdout


def test_dry_run_prints_the_command_shell_quoted(kv_app: Path, tmp_path: Path) -> None:
    state, disk = tmp_path / "state", blank_disk(kv_app, "dry.img")
    out = unik(kv_app, "run", "--dry-run", "--block", f"storage={disk}", "--key", "a key", "--value", "it's",
               state=state).stdout
    assert out.count("\n") == 1 and out.startswith("UNIK_PROG=kv.pyz ")
    words = shlex.split(out)
    assert "--key=a key" in words and "--value=it's" in words
    assert not disk.read_bytes().strip(b"\0")  # nothing ran
    assert instances(kv_app, state) == {}
    ran = subprocess.run(["sh", "-c", out], cwd=kv_app, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "a key = it's" in ran.stdout
