"""Instances an engine manages (a deployed libvirt domain): ps, stop and rm ask the engine named in the record."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest
from unik.instances import Instance, InstanceError, Registry, load_engine
from unik.instances_cli import cmd_rm, row, stop
from unik.progress import Progress

#: What the fake engine was asked, and whether its "domain" runs, by instance name.
CALLS: list[tuple[str, str]] = []
RUNNING: dict[str, bool] = {}


class FakeEngine:
    """An engine with a domain that runs until it is stopped or killed; exit status 143."""

    def running(self, instance: Instance) -> bool:
        return RUNNING.get(instance.name, False)

    def status(self, instance: Instance) -> int | None:
        return 143 if not RUNNING.get(instance.name, False) else None

    def stop(self, instance: Instance, timeout: float) -> str:
        CALLS.append(("stop", instance.name))
        RUNNING[instance.name] = False
        return f"{instance.name} stopped"

    def kill(self, instance: Instance) -> None:
        CALLS.append(("kill", instance.name))
        RUNNING[instance.name] = False

    def forget(self, instance: Instance) -> None:
        CALLS.append(("forget", instance.name))


ENGINE = f"{__name__}:FakeEngine"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    CALLS.clear()
    RUNNING.clear()
    return Registry()


def _deployed(registry: Registry, name: str) -> Instance:
    registry.reserve(name, "app")
    instance = Instance(name=name, app="app", target="virtio", project="/p", artifact="/p/dist", detached=True,
                        started=time.time(), state="running", engine=ENGINE, details={"domain": name})
    registry.write(instance)
    RUNNING[name] = True
    return registry.get(name)


def test_the_engine_says_whether_it_runs_and_how_it_ended(registry: Registry) -> None:
    instance = _deployed(registry, "web")
    assert instance.pid == 0 and instance.alive() and instance.shown_state() == "running"
    assert row(instance, time.time())["PID/DOMAIN"] == "domain web"
    RUNNING["web"] = False  # it powered itself off
    assert not instance.alive() and instance.shown_state() == "exited (143)"


def test_stop_and_rm_go_through_the_engine(registry: Registry) -> None:
    instance = _deployed(registry, "web")
    assert stop(instance, 5.0) == "web stopped"
    assert registry.get("web").shown_state() == "exited (143)" and registry.get("web").status == 143
    assert stop(registry.get("web"), 5.0) == "web is not running (exited (143))"
    ns = argparse.Namespace(names=["web"], force=False, progress=Progress(quiet=True))
    assert cmd_rm(ns) == 0
    assert CALLS == [("stop", "web"), ("forget", "web")]
    assert registry.all() == []


def test_rm_f_kills_a_running_one_through_the_engine(registry: Registry) -> None:
    _deployed(registry, "web")
    assert cmd_rm(argparse.Namespace(names=["web"], force=False, progress=Progress(quiet=True))) == 1  # running
    assert cmd_rm(argparse.Namespace(names=["web"], force=True, progress=Progress(quiet=True))) == 0
    assert CALLS == [("kill", "web"), ("forget", "web")]


def test_an_engine_that_cannot_be_loaded_is_named(registry: Registry) -> None:
    with pytest.raises(InstanceError, match=r"managed by nowhere:Engine, which cannot be loaded.*install the plugin"):
        load_engine("nowhere:Engine")
