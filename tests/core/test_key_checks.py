"""Keys are checked where they are given, and errors name where that was (file/table/key or option)."""

from __future__ import annotations

from typing import Any

import pytest
from core_support import MakeApp
from unik.errors import BadKey, ConfigError, UnknownTarget, did_you_mean
from unik.hookspecs import hookimpl
from unik.keys import Key, KeyValues, Origin
from unik.provider import Provider
from unik.runtime import parse_args
from unik.testing import PluginRegistry

APP = """
from unik.devices import Console, Stack

async def start(stack: Stack, console: Console, *, port: int = 8080) -> None:
    pass
"""


def even(value: Any, keys: KeyValues) -> None:
    if value % 2:
        raise ValueError(f"{value} is odd: give an even number")


EVEN = Key("lanes", "an even number", "int", check=even)
BOUND = Key("speed", "per device, even", "int", per_device=True, check=even)


def test_a_check_names_the_option_or_the_file_table_and_key() -> None:
    keys = KeyValues([EVEN, BOUND])
    with pytest.raises(BadKey, match=r"^--lanes: 3 is odd: give an even number$"):
        keys.with_args({"lanes": ["3"]}).check([EVEN])
    origin = Origin("/p/pyproject.toml", "tool.unik.targets.fake")
    with pytest.raises(ConfigError, match=r"^/p/pyproject.toml: \[tool.unik.targets.fake\] lanes: 3 is odd"):
        keys.with_args({"lanes": ["3"]}, origin).check([EVEN])
    # A later layer's value is blamed on that layer.
    with pytest.raises(BadKey, match=r"^--lanes: 5 is odd"):
        keys.with_args({"lanes": ["2"]}, origin).with_args({"lanes": ["5"]}).check([EVEN])
    with pytest.raises(BadKey, match=r"^--speed: wan=7: 7 is odd"):
        keys.with_args({"speed": ["lan=2", "wan=7"]}).check([BOUND])
    keys.with_args({"lanes": ["4"], "speed": ["lan=2"]}).check([EVEN, BOUND])


def test_a_bad_type_or_unknown_key_from_a_file_names_it() -> None:
    origin = Origin("/p/pyproject.toml", "tool.unik.targets.fake")
    keys = KeyValues([EVEN, Key("mode", "", choices=("fast", "slow"))])
    with pytest.raises(ConfigError, match=r"\[tool.unik.targets.fake\] lanes: 'four' is not a valid int$"):
        keys.with_args({"lanes": ["four"]}, origin)
    with pytest.raises(ConfigError, match=r"lanse: unknown key \(did you mean 'lanes'\?\) \(known here: lanes, mode\)"):
        keys.with_args({"lanse": ["4"]}, origin)
    with pytest.raises(BadKey, match=r"^unknown option --lanse \(did you mean '--lanes'\?\)$"):
        keys.with_args({"lanse": ["4"]})
    with pytest.raises(BadKey, match=r"^--mode: 'fsat' is not one of fast, slow \(did you mean 'fast'\?\)$"):
        keys.with_args({"mode": ["fsat"]})


def test_did_you_mean_only_when_close() -> None:
    assert did_you_mean("virtoi", ["unix", "virtio", "xen"]) == " (did you mean 'virtio'?)"
    assert did_you_mean("zzz", ["unix", "virtio"]) == ""


def test_did_you_mean_names_every_equally_close_choice() -> None:
    assert did_you_mean("--ipv5", ["--ipv6", "--ipv4", "--net"]) == " (did you mean '--ipv4' or '--ipv6'?)"


class Checked(Provider):
    """A fake stack whose key has a check hook, as unik-lib-tcpip's --ipv4 does."""

    PLUGIN_NAME = "checked.stack"
    kind = "stack"
    implementation = "fake_plugin:FakeHostStack"
    priority = 100
    keys = (EVEN,)


class CheckedPlugin:
    UNIK_API = ">=1.0,<2"

    @hookimpl
    def unik_register_providers(self) -> list[type[Provider]]:
        return [Checked]



def test_configure_runs_the_chosen_providers_checks(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app(APP, toml="[tool.unik.targets.fake]\nlanes = 3\n")
    project = registry.add(CheckedPlugin(), "checked").project(root)
    with pytest.raises(ConfigError, match=rf"^{root / 'pyproject.toml'}: \[tool.unik.targets.fake\] lanes: 3 is odd"):
        project.configure("fake", {})
    with pytest.raises(BadKey, match=r"^--lanes: 7 is odd"):
        project.configure("fake", {"lanes": ["7"]})
    assert not (root / "_build" / "fake").exists()
    project.configure("fake", {"lanes": ["8"]})


def test_run_checks_the_runner_keys_before_building(
    registry: PluginRegistry, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fake_plugin

    monkeypatch.setattr(fake_plugin.FakeTarget, "run_keys", (Key("cpus", "even CPUs", "int", check=even),))
    root = make_app(APP)
    project = registry.project(root)
    project.configure("fake", {"net": ["service=tap0"]})
    with pytest.raises(BadKey, match=r"^--cpus: 3 is odd"):
        project.run(None, {"cpus": ["3"]})
    assert not (root / "dist").exists()


def test_tables_and_bindings_for_what_does_not_exist(registry: PluginRegistry, make_app: MakeApp) -> None:
    pyproject = r"\S+pyproject.toml"
    project = registry.project(make_app(APP, toml='[tool.unik.targets.fkae]\nnet = "service=tap0"\n'))
    with pytest.raises(ConfigError, match=rf"^{pyproject}: \[tool.unik.targets.fkae\]: there is no target 'fkae' "
                                          r"\(did you mean 'fake'\?\); targets: fake, hvt, spt, unix, virtio, xen$"):
        project.configure("fake", {})
    # A table for a target that exists but is not installed here is someone else's business.
    registry.project(make_app(APP, toml='[tool.unik.targets.xen]\nmem = "1G"\n')).configure("fake", {})
    project = registry.project(make_app(APP, toml='[tool.unik.targets.fake]\nnet = ["servcie=tap0"]\n'))
    with pytest.raises(ConfigError, match=rf"^{pyproject}: \[tool.unik.targets.fake\] net: servcie=tap0: this "
                                          r"application has no device 'servcie' on target 'fake' \(did you mean "
                                          r"'service'\?\) \(devices that take it: service\)$"):
        project.configure("fake", {})
    project = registry.project(make_app(APP))
    with pytest.raises(BadKey, match=r"^--net: srv=tap0: this application has no device 'srv'"):
        project.configure("fake", {"net": ["srv=tap0"]})


def test_build_of_a_misspelt_target_does_not_suggest_configuring_it(
    registry: PluginRegistry, make_app: MakeApp
) -> None:
    project = registry.project(make_app(APP))
    project.configure("fake", {"net": ["service=tap0"]})
    with pytest.raises(UnknownTarget, match=r"^unknown target 'fkae' \(did you mean 'fake'\?\); installed: fake$"):
        project.build("fkae")


def test_internal_keys_are_not_options_of_the_artifact(capsys: pytest.CaptureFixture[str]) -> None:
    fd = Key("fd", "set by the tender", "int", per_device=True, internal=True)
    keys = KeyValues([fd, EVEN])
    assert KeyValues.from_json(keys.to_json()).keys["fd"].internal
    with pytest.raises(SystemExit):
        parse_args(keys, ["--help"], "app")
    out = capsys.readouterr().out
    assert "--lanes" in out and "--fd" not in out
    with pytest.raises(SystemExit):
        parse_args(keys, ["--fd", "service=3"], "app")
    assert "unrecognized arguments: --fd" in capsys.readouterr().err
