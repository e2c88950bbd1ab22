"""configure / build / run on a fake target: generated main, staleness, run-time keys."""

from __future__ import annotations

import ast
import html
import json
import runpy
import sys
from pathlib import Path

import pytest
from core_support import MakeApp
from host_tools import require
from unik.codegen import generate_main
from unik.describe import to_dot, to_text
from unik.errors import NotConfigured, UnknownTarget
from unik.plan import Plan
from unik.testing import PluginRegistry

APP = """
from unik.devices import Console, Stack

async def start(stack: Stack, console: Console, *, port: int = 8080, status: int = 0) -> int:
    console.log(f"listening on {stack.ipv4.address}:{port} via {stack.network.kw['ifname']}")
    return status
"""


def test_configure_writes_plan_and_readable_main(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app(APP)
    project = registry.project(root)
    config = project.configure("fake", {"net": ["service=tap0"]})
    build = root / "_build" / "fake"
    assert json.loads((build / "plan.json").read_text())["target"] == "fake"
    assert (root / "_build" / "current").read_text() == "fake\n"
    main = (build / "main.py").read_text()
    ast.parse(main)
    assert "from fake_plugin import FakeClock, FakeConsole, FakeNetwork, FakeRandom, FakeStack" in main
    assert "# stack: stack from fake (fakelib.stack)" in main
    assert ("        service = await devices.connect(\n            'service',\n            FakeNetwork,\n"
            "            name='service',\n            ifname=keys.get('net', device='service'),\n        )\n") in main
    assert "'values': {'net': {'devices': {'service': 'tap0'}}}," in main
    assert "        return await start(\n            stack=stack,\n            console=console,\n" in main
    assert main == generate_main(config.plan)


def test_generated_main_runs_and_disconnects_in_reverse(
    registry: PluginRegistry, make_app: MakeApp, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fake_plugin

    root = make_app(APP)
    registry.project(root).configure("fake", {"net": ["service=tap0"], "ipv4": ["10.0.0.2/24"]})
    monkeypatch.syspath_prepend(str(root / "src"))
    monkeypatch.setattr(sys, "argv", ["main.py", "--port", "9999", "--status", "3"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(root / "_build" / "fake" / "main.py"), run_name="__main__")
    assert exit_.value.code == 3
    assert "listening on 10.0.0.2:9999 via tap0" in capsys.readouterr().out
    connects = [e.split()[1] for e in fake_plugin.LOG if e.startswith("connect")]
    disconnects = [e.split()[1] for e in fake_plugin.LOG if e.startswith("disconnect")]
    assert connects == ["service", "monotonic_clock", "random", "stack", "console"]
    assert disconnects == list(reversed(connects))


def test_build_and_run_through_the_target(
    registry: PluginRegistry, make_app: MakeApp, capfd: pytest.CaptureFixture[str]
) -> None:
    root = make_app(APP)
    project = registry.project(root)
    project.configure("fake", {"net": ["service=tap0"]})
    artifact = project.build()
    assert artifact.directory == root / "dist" / "demo-fake"
    assert json.loads((artifact.directory / "artifact.json").read_text())["manifest"]["devices"] == 5
    status = project.run(None, {"port": ["81"], "status": ["5"], "mem": ["128M"]})
    out = capfd.readouterr().out
    assert status == 5
    assert "mem=128M" in out  # a run key goes to the runner, not to the application
    assert "listening on 0.0.0.0:81 via tap0" in out


def test_run_time_binding_goes_to_the_artifact(
    registry: PluginRegistry, make_app: MakeApp, capfd: pytest.CaptureFixture[str]
) -> None:
    root = make_app(APP)
    project = registry.project(root)
    project.configure("fake", {})
    artifact = project.build()
    stamp = artifact.path.stat().st_mtime_ns
    assert project.run(None, {"net": ["service=tapA"]}) == 0
    assert "via tapA" in capfd.readouterr().out
    assert artifact.path.stat().st_mtime_ns == stamp  # not rebuilt
    assert project.configuration(None).plan.keys.bindings("net") == {}  # configuration unchanged


def test_run_with_a_key_that_changes_the_graph_reconfigures(
    registry: PluginRegistry, make_app: MakeApp, capfd: pytest.CaptureFixture[str]
) -> None:
    root = make_app(APP)
    project = registry.project(root, quiet=False)
    project.configure("fake", {"net": ["service=tap0"]})
    saved = (root / "_build" / "fake" / "plan.json").read_text()
    artifact = project.build()
    stamp = artifact.path.stat().st_mtime_ns
    capfd.readouterr()
    # A plain --net at run time replaces configure's per-device binding (it does not lose to it).
    assert project.run(None, {"net": ["host"]}) == 0
    out, err = capfd.readouterr()
    assert "listening on 127.0.0.1:8080 via host" in out
    assert ("unik: these options change the device graph: configuring and building for this run in "
            "_build/fake/run (the saved configuration is unchanged)") in err
    assert "building demo for fake (for this run)" in err
    run_plan = Plan.loads((root / "_build" / "fake" / "run" / "plan.json").read_text())
    assert run_plan.node("stack").provider == "fake.host-stack"
    assert [n.name for n in run_plan.nodes] == ["stack", "console"]
    # The saved configuration and its artifact are as configure and build left them.
    assert (root / "_build" / "fake" / "plan.json").read_text() == saved
    assert artifact.path.stat().st_mtime_ns == stamp
    assert project.configuration(None).plan.node("stack").provider == "fakelib.stack"
    assert project.run(None, {}) == 0
    assert "via tap0" in capfd.readouterr().out


def test_run_with_a_configure_time_key_builds_for_that_run(
    registry: PluginRegistry, make_app: MakeApp, capfd: pytest.CaptureFixture[str]
) -> None:
    root = make_app(APP)
    project = registry.project(root, quiet=False)
    project.configure("fake", {})
    project.build()
    capfd.readouterr()
    assert project.run(None, {"flavour": ["spicy"]}) == 0
    out, err = capfd.readouterr()
    assert "flavour=spicy" in out
    assert "unik: --flavour is built into the artifact: configuring and building for this run in _build/fake/run" in err
    assert "flavour" not in project.configuration(None).plan.keys.values  # not saved
    assert project.run(None, {}) == 0
    out, err = capfd.readouterr()
    assert "flavour=plain" in out and "running demo on fake (configured " in err


def test_build_and_run_say_which_target_and_a_failed_configure(
    registry: PluginRegistry, make_app: MakeApp, capfd: pytest.CaptureFixture[str]
) -> None:
    root = make_app(APP)
    project = registry.project(root, quiet=False)
    project.configure("fake", {})
    with pytest.raises(UnknownTarget):
        project.configure("nosuch", {})
    note = project.configure_failed("nosuch")
    assert note.startswith("the configuration for fake (made ") and "is still the current one" in note
    capfd.readouterr()
    project.build()
    err = capfd.readouterr().err
    assert "unik: warning: the last `unik configure -t nosuch` failed: using the fake configuration made " in err
    assert "unik: building demo for fake (configured " in err
    project.configure("fake", {})
    project.build()
    assert "warning" not in capfd.readouterr().err  # a configure that succeeds clears it


def test_stale_configuration_is_redone(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app(APP)
    project = registry.project(root)
    project.configure("fake", {"port": ["1"]})
    assert project.configuration(None).plan.keys.get("port") == 1
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.unik.targets.fake]\nstatus = 7\n")
    config = project.configuration(None)
    assert config.plan.keys.get("status") == 7
    assert config.plan.keys.get("port") == 1  # the options given to configure are kept


def test_source_change_triggers_rebuild_on_run(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app(APP)
    project = registry.project(root)
    config = project.configure("fake", {})
    artifact = project.build()
    before = project.inputs_digest(config)
    assert artifact.manifest["inputs"] == before
    init = root / "src" / "demo_app" / "__init__.py"
    init.write_text(init.read_text().replace("return status", "return status + 1"))
    assert project.inputs_digest(config) != before
    assert project.run(None, {}) == 1


def test_not_configured(registry: PluginRegistry, make_app: MakeApp) -> None:
    project = registry.project(make_app(APP))
    with pytest.raises(NotConfigured, match="run `unik configure -t TARGET` first"):
        project.build()


def test_describe(registry: PluginRegistry, make_app: MakeApp) -> None:
    plan = registry.project(make_app(APP)).configure("fake", {"net": ["service=tap0"]}).plan
    dot = to_dot(plan)
    assert dot.startswith("digraph unik {")
    assert '"demo_app:start" -> "stack" [label="stack"];' in dot
    assert '"stack" -> "service" [label="network"];' in dot
    assert "ifname=--net (tap0)" in dot
    assert "keys: net service=tap0" in dot
    text = to_text(plan)
    assert "stack            stack            fakelib.stack" in text
    assert "network=service, clock=monotonic_clock, random=random" in text


def test_dot_is_valid_graphviz(registry: PluginRegistry, make_app: MakeApp, tmp_path: Path) -> None:
    import shutil
    import subprocess

    require("dot")
    dot = shutil.which("dot")
    assert dot is not None
    plan = registry.project(make_app(APP)).configure("fake", {}).plan
    out = subprocess.run([dot, "-Tsvg"], input=to_dot(plan), capture_output=True, text=True, check=True)
    assert "<svg" in out.stdout and "fakelib.stack" in out.stdout


def test_dot_labels_break_lines_instead_of_printing_backslash_n(
    registry: PluginRegistry, make_app: MakeApp
) -> None:
    # `unik describe --dot | dot -Tsvg` showed "demo_app:start\napplication" on one line.
    import re
    import shutil
    import subprocess

    require("dot")
    dot = shutil.which("dot")
    assert dot is not None
    plan = registry.project(make_app(APP)).configure("fake", {"net": ["service=tap0"]}).plan
    source = to_dot(plan)
    assert 'label="demo_app:start\\napplication"' in source
    svg = subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True, check=True).stdout
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert not [t for t in texts if "\\" in t], texts
    assert "demo_app:start" in texts and "application" in texts  # two lines of one node
    assert "keys: net service=tap0" in texts  # the graph's title, its second line
    assert "ifname=--net (tap0)" in texts


def test_cli_run_accepts_the_runner_keys(
    make_app: MakeApp, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from unik.cli import main

    root = make_app(APP)
    monkeypatch.setenv("UNIK_LOAD_PLUGINS", "fake")  # the session's "fake" distribution, found by entry point
    assert main(["-C", str(root), "-q", "configure", "-t", "fake", "--net", "service=tap0"]) == 0
    assert main(["-C", str(root), "-q", "run", "--mem", "512M", "--status", "2"]) == 2
    out = capfd.readouterr().out
    assert "mem=512M" in out and "listening on 0.0.0.0:8080 via tap0" in out
