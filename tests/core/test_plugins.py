"""The plugin manager: discovery, isolation, env switches, API checks, duplicates."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from unik.errors import DuplicateName, IncompatiblePlugin, PluginError, UnknownTarget
from unik.hookspecs import hookimpl
from unik.plugins import PluginManager
from unik.testing import PluginRegistry, install_entry_point

GOOD = '''
from unik.hookspecs import hookimpl
from unik.target import Target
UNIK_API = ">=1.0,<2"

class Good(Target):
    PLUGIN_NAME = "good"
    description = "a target that loads"

@hookimpl
def unik_register_targets():
    return [Good]
'''
BROKEN = "raise RuntimeError('this plugin is broken')\n"
OLD = 'UNIK_API = ">=0.1,<1"\n'


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path holding fake installed plugin distributions."""
    (tmp_path / "good_plugin.py").write_text(GOOD)
    (tmp_path / "broken_plugin.py").write_text(BROKEN)
    (tmp_path / "old_plugin.py").write_text(OLD)
    install_entry_point(tmp_path, "unik-good", "good", "good_plugin")
    install_entry_point(tmp_path, "unik-broken", "broken", "broken_plugin")
    install_entry_point(tmp_path, "unik-old", "old", "old_plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def manager(**env: str) -> tuple[PluginManager, list[str]]:
    warnings: list[str] = []
    return PluginManager(env=env, warn=warnings.append).load(), warnings


def test_broken_plugin_is_isolated(site: Path) -> None:
    pm, warnings = manager()
    assert "good" in pm.targets()
    failed = {f.name: f for f in pm.failures}
    assert set(failed) >= {"broken", "old"}
    assert failed["broken"].error == "RuntimeError: this plugin is broken"
    assert any("plugin 'broken' (unik-broken) failed to load and is skipped" in w
               and "UNIK_DISABLE_PLUGINS=broken" in w for w in warnings)
    assert "supports unik API >=0.1,<1, but this core provides API 1.0" in (failed["old"].error or "")
    rows = {r["name"]: r for r in pm.describe()}
    assert rows["good"]["distribution"] == "unik-good"
    assert rows["good"]["version"] == "0.1.0"
    assert rows["good"]["hooks"] == ["unik_register_targets"]
    assert rows["broken"]["error"].startswith("RuntimeError")


def test_strict_mode_makes_a_broken_plugin_fatal(site: Path) -> None:
    with pytest.raises(PluginError, match="plugin 'broken' \\(unik-broken\\) failed to load"):
        manager(UNIK_STRICT_PLUGINS="1", UNIK_DISABLE_PLUGINS="old")


def test_load_and_disable_switches(site: Path) -> None:
    pm, warnings = manager(UNIK_LOAD_PLUGINS="good")
    assert set(pm.plugins) == {"unik", "good"} and not pm.failures and not warnings
    pm, _ = manager(UNIK_LOAD_PLUGINS="unik-good,broken")  # distribution names work too
    assert "good" in pm.plugins and [f.name for f in pm.failures] == ["broken"]
    pm, _ = manager(UNIK_DISABLE_PLUGINS="broken,old")
    assert not pm.failures and "good" in pm.plugins
    pm, _ = manager(UNIK_LOAD_PLUGINS="")
    assert set(pm.plugins) == {"unik"}


def test_broken_plugin_does_not_take_down_the_command(site: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), *sys.path]))
    env.pop("UNIK_STRICT_PLUGINS", None)
    unik = [sys.executable, "-m", "unik.cli"]
    out = subprocess.run([*unik, "targets", "--json"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "good" in [t["name"] for t in json.loads(out.stdout)]
    assert "plugin 'broken' (unik-broken) failed to load and is skipped" in out.stderr
    out = subprocess.run([*unik, "targets"], env=dict(env, UNIK_STRICT_PLUGINS="1"),
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "unik: error: plugin 'broken' (unik-broken) failed to load: RuntimeError" in out.stderr
    assert "Traceback" not in out.stderr


def test_incompatible_or_undeclared_api() -> None:
    class Old:
        UNIK_API = ">=2"

    class Undeclared:
        pass

    class Invalid:
        UNIK_API = "one point oh"

    reg = PluginRegistry()
    with pytest.raises(IncompatiblePlugin, match="upgrade the plugin or install a matching unik"):
        reg.add(Old(), "old")
    with pytest.raises(IncompatiblePlugin, match="does not declare UNIK_API"):
        reg.add(Undeclared(), "undeclared")
    with pytest.raises(IncompatiblePlugin, match="invalid UNIK_API"):
        reg.add(Invalid(), "invalid")


def test_duplicate_names_name_both_plugins() -> None:
    import fake_plugin

    class Copy:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_register_targets() -> list[type]:
            return [fake_plugin.FakeTarget]

    reg = PluginRegistry().add(fake_plugin, "fake").add(Copy(), "copycat")
    with pytest.raises(DuplicateName) as err:
        reg.targets()
    assert str(err.value) == (
        "target 'fake' is registered by two plugins: fake and copycat; uninstall one of them "
        "or disable it with UNIK_DISABLE_PLUGINS=copycat"
    )


def test_registrations_are_checked() -> None:
    class NotATarget:
        PLUGIN_NAME = "x"

    class Plug:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_register_targets() -> list[type]:
            return [NotATarget]

    with pytest.raises(PluginError, match="which is not a Target subclass"):
        PluginRegistry().add(Plug(), "p").targets()


def test_a_misspelt_hook_is_an_error_naming_the_plugin_and_the_hook(site: Path) -> None:
    class Typo:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_register_provider() -> list[type]:  # missing its s: pluggy's check_pending refuses it
            return []

    class WrongArgument:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_configure(plann: object) -> None:
            return None

    with pytest.raises(PluginError) as err:
        PluginRegistry().add(Typo(), "typo")
    assert str(err.value).startswith("plugin 'typo' implements unknown hook(s): unik_register_provider "
                                     "(did you mean 'unik_register_providers'?)")
    with pytest.raises(PluginError, match=r"plugin 'wrong': .*unik_configure.*plann"):
        PluginRegistry().add(WrongArgument(), "wrong")
    # Installed, the plugin is reported and skipped like any broken one (fatal when strict).
    (site / "typo_plugin.py").write_text(GOOD.replace("def unik_register_targets", "def unik_register_target"))
    install_entry_point(site, "unik-typo", "typo", "typo_plugin")
    pm, warnings = manager(UNIK_DISABLE_PLUGINS="broken,old")
    assert [f.name for f in pm.failures] == ["typo"] and "typo" not in pm.plugins
    assert any("plugin 'typo' (unik-typo) failed to load" in w and "unik_register_target " in w for w in warnings)
    assert "good" in pm.targets()


def test_unknown_target_says_what_to_install(registry: PluginRegistry) -> None:
    expected = r"target 'xen' is not installed \(installed: fake\); install it with `pip install unik-target-xen`"
    with pytest.raises(UnknownTarget, match=expected):
        registry.target("xen")


def test_a_misspelt_target_gets_the_nearest_name(registry: PluginRegistry) -> None:
    with pytest.raises(UnknownTarget, match=r"^unknown target 'fkae' \(did you mean 'fake'\?\); installed: fake$"):
        registry.target("fkae")


def test_image_contents_and_configure_hooks(registry: PluginRegistry, make_app: object) -> None:
    from unik.hookspecs import ImageContents

    class Lib:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_image_contents(plan: object) -> ImageContents:
            return ImageContents(kernel_modules=["virtio_net"], python_modules=["ssl"])

        @staticmethod
        @hookimpl
        def unik_configure(plan: object) -> dict[str, int]:
            return {"answer": 42}

    registry.add(Lib(), "lib")
    root = make_app("from unik.devices import Console\nasync def start(c: Console) -> None: ...")  # type: ignore[operator]
    plan = registry.project(root).compose("fake", {})
    assert plan.contributions == {"lib": {"answer": 42}}
    assert registry.image_contents(plan)["lib"].kernel_modules == ["virtio_net"]


def test_runtime_modules_are_declared_and_checked() -> None:
    import types

    from unik.provider import Provider

    class Console(Provider):
        PLUGIN_NAME = "mine.console"
        kind = "console"
        implementation = "mine.other:Console"

    def plugin(runtime: object) -> types.ModuleType:
        module = types.ModuleType("mine.plugin")
        module.UNIK_API = ">=1"  # type: ignore[attr-defined]
        module.UNIK_RUNTIME = runtime  # type: ignore[attr-defined]
        module.unik_register_providers = hookimpl(lambda: [Console])  # type: ignore[attr-defined]
        return module

    reg = PluginRegistry().add(plugin(("mine.device",)), "mine")
    assert reg.plugins["mine"].runtime == ["mine.device"]
    assert {r["name"]: r for r in reg.describe()}["mine"]["runtime"] == ["mine.device"]
    expected = ("provider 'mine.console' is implemented by mine.other, which its UNIK_RUNTIME does not list: "
                "add 'mine.other' to UNIK_RUNTIME in mine.plugin")
    with pytest.raises(PluginError, match=re.escape(expected)):
        reg.providers()
    assert "mine.console" in PluginRegistry().add(plugin(("mine.device", "mine.other")), "mine").providers()
    with pytest.raises(PluginError, match=r"UNIK_RUNTIME must be a tuple of module names"):
        PluginRegistry().add(plugin("mine.device"), "bad")
