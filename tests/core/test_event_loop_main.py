"""The generated main.py runs on the event loop a device's provider declares, and refuses host sockets
on targets without a host network."""

from __future__ import annotations

import dataclasses
import runpy
import sys

import fake_plugin
import loop_plugin
import pytest
from core_support import MakeApp
from unik.codegen import generate_main
from unik.plan import Plan
from unik.testing import PluginRegistry

APP = """
import asyncio
from unik.devices import Stack

async def start(stack: Stack) -> int:
    print("running on", type(asyncio.get_running_loop()).__name__)
    return 0
"""


def test_main_runs_on_the_stack_s_event_loop_and_attaches_the_stack(
        registry: PluginRegistry, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = make_app(APP, name="loopdemo")
    monkeypatch.delitem(sys.modules, "loopdemo_app", raising=False)
    config = registry.add(loop_plugin, "loop").project(root).configure("fake", {"net": ["service=tap0"]})
    [stack] = [n for n in config.plan.nodes if n.kind == "stack"]
    assert stack.event_loop == "loop_plugin:FakeLoop"
    assert Plan.loads(config.plan.dumps()) == config.plan
    main = (root / "_build" / "fake" / "main.py").read_text()
    assert "from loop_plugin import FakeLoop\n" in main
    assert "EVENT_LOOP = FakeLoop\n" in main and "event_loop=EVENT_LOOP" in main
    assert "refuse_host_sockets" not in main, "the fake target has a host network"
    monkeypatch.syspath_prepend(str(root / "src"))
    monkeypatch.setattr(sys, "argv", ["main.py"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(root / "_build" / "fake" / "main.py"), run_name="__main__")
    assert exit_.value.code == 0
    assert capsys.readouterr().out == "running on FakeLoop\n"
    log = fake_plugin.LOG
    assert log.index("attach stack to FakeLoop") == log.index("connect stack") + 1


def test_main_without_such_a_device_runs_on_asyncio_s_loop(registry: PluginRegistry, make_app: MakeApp) -> None:
    config = registry.project(make_app(APP, name="loopdemo")).configure("fake", {"net": ["service=tap0"]})
    main = generate_main(config.plan)
    assert "EVENT_LOOP = None\n" in main and "attach_running" not in main


def test_a_target_without_host_network_refuses_host_sockets_first(registry: PluginRegistry,
                                                                   make_app: MakeApp) -> None:
    plan = registry.project(make_app(APP, name="loopdemo")).configure("fake", {"net": ["service=tap0"]}).plan
    sealed = dataclasses.replace(plan, host_network=False)
    assert Plan.loads(sealed.dumps()).host_network is False
    main = generate_main(sealed)
    first = main.split('"""Connect the devices in dependency order, then run the application."""\n')[1]
    assert first.startswith("    runtime.refuse_host_sockets('fake')")


@pytest.mark.parametrize(("module", "cls", "host_network"), [
    ("unik_unix.target", "UnixTarget", True), ("unik_virtio.target", "VirtioTarget", False),
    ("unik_xen.target", "XenTarget", False), ("unik_solo5.target", "SptTarget", False),
    ("unik_solo5.hvt_target", "HvtTarget", False),
])
def test_targets_declare_whether_they_have_a_host_network(module: str, cls: str, host_network: bool) -> None:
    target = getattr(pytest.importorskip(module), cls)
    assert target.host_network is host_network
