"""unik.instances: names taken once under concurrency, records replaced whole, liveness by pid start time."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from unik.instances import Instance, InstanceError, Registry, boot_id, process_start, state_dir


def _reserve(root: str, queue: multiprocessing.Queue[str]) -> None:
    queue.put(Registry(Path(root)).reserve(None, "My App").name)


def test_concurrent_runs_never_get_the_same_name(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_reserve, args=(str(tmp_path), queue)) for _ in range(12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    names = sorted(queue.get(timeout=5) for _ in procs)
    assert names == sorted(["my-app", *[f"my-app-{n}" for n in range(2, 13)]])


def test_a_taken_or_malformed_name_is_refused_with_the_fix(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.reserve("web", "app")
    with pytest.raises(InstanceError, match=r"the name 'web' is taken.*unik rm web"):
        registry.reserve("web", "app")
    with pytest.raises(InstanceError, match="lower-case letters"):
        registry.reserve("../etc", "app")


def _record(registry: Registry, name: str, pid: int, start: int | None, **fields: object) -> Instance:
    registry.reserve(name, "app")
    fields.setdefault("detached", True)
    instance = Instance(name=name, app="app", target="unix", project="/p", artifact="/p/dist",
                        pid=pid, pid_start=start or 0, boot_id=boot_id(), state="running", **fields)  # type: ignore[arg-type]
    registry.write(instance)
    return instance


def test_liveness_is_the_pid_and_its_start_time(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start(child.pid)
        assert start is not None
        _record(registry, "live", child.pid, start)
        _record(registry, "reused", child.pid, start - 1)  # the pid now names another process
        _record(registry, "rebooted", child.pid, start)
        registry.update("rebooted", boot_id="another-boot")
        shown = {i.name: i.shown_state() for i in registry.all()}
        assert shown == {"live": "running", "reused": "exited (unknown)", "rebooted": "exited (unknown)"}
    finally:
        child.kill()
        child.wait()
    assert registry.get("live").shown_state() == "exited (unknown)"  # gone without writing its end
    registry.update("live", state="exited", status=3)
    assert registry.get("live").shown_state() == "exited (3)"


def test_records_are_replaced_whole_and_rm_leaves_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    _record(registry, "one", os.getpid(), process_start(os.getpid()))
    registry.update("one", details={"qemu_pid": 5})
    registry.update("one", details={"accel": "tcg"})
    data = json.loads((tmp_path / "instances" / "one" / "instance.json").read_text())
    assert data["details"] == {"qemu_pid": 5, "accel": "tcg"}
    assert not [p for p in (tmp_path / "instances" / "one").iterdir() if p.name.endswith(".tmp")]
    registry.remove("one")
    assert list((tmp_path / "instances").iterdir()) == []
    assert registry.update("one", state="exited") is None  # a supervisor ending after rm -f
    with pytest.raises(InstanceError, match=r"no instance 'one'.*there are none"):
        registry.get("one")


def test_the_state_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_dir() == tmp_path / "unik"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_dir() == tmp_path / ".local" / "state" / "unik"


def test_process_start_reads_names_with_spaces_and_parentheses(tmp_path: Path) -> None:
    script = tmp_path / "a (b) c"
    script.symlink_to(sys.executable)
    child = subprocess.Popen([str(script), "-c", "import time; time.sleep(30)"])
    try:
        assert process_start(child.pid) is not None
    finally:
        child.kill()
        child.wait()
    assert process_start(child.pid) is None


def test_a_killed_foreground_run_gives_its_name_back(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid now names no process: a `unik run` killed before it could remove its record
    _record(registry, "app", child.pid, 12345, detached=False)
    _record(registry, "kept", child.pid, 12345)  # detached: kept for `unik logs` until `unik rm`
    _record(registry, "starting", 0, None, detached=False)  # no pid yet: still starting, left alone
    assert registry.reserve(None, "app").name == "app"  # not app-2
    assert not (tmp_path / "instances" / "app" / "instance.json").exists()  # the new run's, to be written
    assert sorted(i.name for i in registry.all()) == ["kept", "starting"]
    _record(registry, "gone", child.pid, 12345, detached=False)
    assert "gone" not in [i.name for i in registry.all()]
    assert not (tmp_path / "instances" / "gone").exists()
