"""Composition: graph resolution, overrides, keys and every error path."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from core_support import MakeApp
from unik.application import Application
from unik.compose import Implementation, TargetRef, compose
from unik.errors import (
    AmbiguousProvider,
    BadKey,
    ConfigError,
    CycleError,
    KindConflict,
    MissingProvider,
    ProjectNotFound,
)
from unik.hookspecs import hookimpl
from unik.keys import KeyValues
from unik.plan import Plan
from unik.provider import Need, Provider
from unik.testing import PluginRegistry

STACK_APP = """
from unik.devices import Console, Stack

async def start(stack: Stack, console: Console, *, port: int = 8080, verbose: bool = False) -> None:
    console.log(f"{stack.ipv4.address}:{port}")
"""


def plan_for(registry: PluginRegistry, root: Path, target: str = "fake", **keys: list[str]) -> Plan:
    return registry.project(root).compose(target, keys)


def test_graph_resolution_and_connect_order(registry: PluginRegistry, make_app: MakeApp) -> None:
    plan = plan_for(registry, make_app(STACK_APP))
    order = [n.name for n in plan.nodes]
    # Dependencies come before their users; the app's devices keep parameter order.
    assert order == ["service", "monotonic_clock", "random", "stack", "console"]
    stack = plan.node("stack")
    assert stack.provider == "fakelib.stack"
    assert stack.deps == {"network": "service", "clock": "monotonic_clock", "random": "random"}
    assert stack.needed_by == ("application 'demo'",)
    assert plan.node("service").needed_by == ("stack (fakelib.stack)",)
    assert plan.node("service").options == {"name": "service"}
    assert plan.app.settings == (("port", "port"), ("verbose", "verbose"))
    assert plan.keys.get("port") == 8080
    assert plan.keys.get("verbose") is False
    assert set(plan.keys.keys) == {"ipv4", "net", "port", "verbose"}
    assert plan.distributions == ("fake", "unik-core")


def test_compose_is_deterministic(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app(STACK_APP)
    first = plan_for(registry, root, net=["service=tap0"]).dumps()
    second = plan_for(PluginRegistry().add(__import__("fake_plugin"), "fake"), root, net=["service=tap0"]).dumps()
    assert first == second
    assert Plan.loads(first).dumps() == first


def test_compose_function_directly(registry: PluginRegistry, make_app: MakeApp) -> None:
    app = Application.load(make_app(STACK_APP) / "pyproject.toml")
    impls = [Implementation(cls, "fake") for cls in registry.providers().values()]
    keys = KeyValues([*registry.keys("fake").values(), *(s.key for s in app.settings)])
    plan = compose(app, app.devices, impls, target=TargetRef("fake", "fake"), keys=keys)
    assert [n.name for n in plan.nodes][-1] == "console"
    # Only the devices passed as dependencies are resolved.
    plan = compose(app, app.devices[1:], impls, target=TargetRef("fake", "fake"), keys=keys)
    assert [n.name for n in plan.nodes] == ["console"]


def test_keys_from_command_line_and_target_table(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app(STACK_APP, """
        [tool.unik.targets.fake]
        port = 9000
        net = "service=tapX"
        """)
    plan = plan_for(registry, root)
    assert plan.keys.get("port") == 9000
    assert plan.keys.get("net", device="service") == "tapX"
    plan = plan_for(registry, root, port=["1234"], net=["service=tap7"], ipv4=["10.0.0.2/24"])
    assert plan.keys.get("port") == 1234
    assert plan.keys.get("net", device="service") == "tap7"
    assert plan.keys.get("ipv4") == "10.0.0.2/24"
    with pytest.raises(BadKey, match="--port: 'eighty' is not a valid int"):
        plan_for(registry, root, port=["eighty"])


def test_device_table_and_per_target_override(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app(STACK_APP, """
        [tool.unik.devices.stack.use]
        network = "uplink"
        [tool.unik.devices.uplink]
        mtu = 9000
        [tool.unik.targets.fake.devices.uplink]
        mtu = 1400
        """)
    plan = plan_for(registry, root)
    assert plan.node("stack").deps["network"] == "uplink"
    assert plan.node("uplink").kind == "network"


def test_baked_kv_ro(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app("""
        from unik.devices import KVRO
        async def start(htdocs: KVRO) -> None: ...
        """, """
        [tool.unik.devices.htdocs]
        kind = "kv_ro"
        source = "site"
        """)
    (root / "site" / "css").mkdir(parents=True)
    (root / "site" / "index.html").write_text("<h1>hi</h1>")
    (root / "site" / "css" / "a.css").write_text("h1{}")
    plan = plan_for(registry, root)
    node = plan.node("htdocs")
    assert node.provider == "unik.baked-kv"
    assert node.options == {"directory": "assets/htdocs"}
    assert [f.dest for f in plan.files] == ["assets/htdocs/css/a.css", "assets/htdocs/index.html"]


# --- error paths ---------------------------------------------------------------------


def test_missing_provider_names_the_distribution(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app("""
        from unik.devices import FileSystem
        async def start(disk: FileSystem) -> None: ...
        """)
    with pytest.raises(MissingProvider) as err:
        plan_for(registry, root)
    assert str(err.value) == (
        "device 'disk' (kind 'fs', needed by application 'demo') has no provider for target "
        "'fake': install one with `pip install unik-lib-fat`"
    )


def test_missing_device_kind_on_target(make_app: MakeApp) -> None:
    import fake_plugin

    class NoConsole:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_register_targets() -> list[type]:
            return [fake_plugin.FakeTarget]

    reg = PluginRegistry().add(NoConsole(), "bare")
    root = make_app("""
        from unik.devices import Console
        async def start(console: Console) -> None: ...
        """)
    with pytest.raises(MissingProvider, match="target 'fake' does not provide 'console' devices"):
        reg.project(root).compose("fake", {})


def test_provider_that_does_not_apply(make_app: MakeApp) -> None:
    import fake_plugin

    class Picky(fake_plugin.StackP):
        PLUGIN_NAME = "picky.stack"

        @classmethod
        def applies(cls, request: object) -> bool:
            return False

    class Plug:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_register_providers() -> list[type]:
            return [Picky]

    reg = PluginRegistry().add(Plug(), "picky")
    reg.add(_target_only(), "fake")
    root = make_app(STACK_APP)
    expected = r"installed providers \(fake.host-stack, picky.stack\) do not apply.*unik-lib-tcpip"
    with pytest.raises(MissingProvider, match=expected):
        reg.project(root).compose("fake", {})


def _target_only() -> object:
    import fake_plugin

    class T:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_register_targets() -> list[type]:
            return [fake_plugin.FakeTarget]

        @staticmethod
        @hookimpl
        def unik_register_providers() -> list[type]:
            return list(fake_plugin.PROVIDERS)

    return T()


def _providers_plugin(*classes: type[Provider]) -> object:
    class P:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_register_providers() -> list[type]:
            return list(classes)

    return P()


def test_ambiguous_providers_and_explicit_choice(registry: PluginRegistry, make_app: MakeApp) -> None:
    import fake_plugin

    class Other(fake_plugin.StackP):
        PLUGIN_NAME = "other.stack"

    registry.add(_providers_plugin(Other), "other")
    root = make_app(STACK_APP)
    with pytest.raises(AmbiguousProvider) as err:
        plan_for(registry, root)
    assert str(err.value) == (
        "device 'stack' (kind 'stack') could come from fakelib.stack, other.stack: "
        'choose one with `provider = "..."` in [tool.unik.devices.stack]'
    )
    root = make_app(STACK_APP, '[tool.unik.devices.stack]\nprovider = "other.stack"\n')
    assert plan_for(registry, root).node("stack").provider == "other.stack"
    root = make_app(STACK_APP, '[tool.unik.devices.stack]\nprovider = "nope"\n')
    with pytest.raises(ConfigError, match=r"\[tool.unik.devices.stack\] provider: no provider 'nope'"):
        plan_for(registry, root)


def test_cycle_is_named(registry: PluginRegistry, make_app: MakeApp) -> None:
    class A(Provider):
        PLUGIN_NAME = "cyc.fs"
        kind = "fs"
        implementation = "x:A"
        needs: ClassVar = {"kv": Need("kv_rw", "store")}

    class B(Provider):
        PLUGIN_NAME = "cyc.kv"
        kind = "kv_rw"
        implementation = "x:B"
        needs: ClassVar = {"fs": Need("fs", "disk")}

    registry.add(_providers_plugin(A, B), "cyc")
    root = make_app("""
        from unik.devices import FileSystem
        async def start(disk: FileSystem) -> None: ...
        """)
    with pytest.raises(CycleError) as err:
        plan_for(registry, root)
    assert err.value.cycle == ["disk", "store", "disk"]
    assert str(err.value) == "device graph has a cycle: disk -> store -> disk"


def test_kind_conflict(registry: PluginRegistry, make_app: MakeApp) -> None:
    root = make_app("""
        from unik.devices import Console, Stack
        async def start(stack: Stack, service: Console) -> None: ...
        """)
    with pytest.raises(KindConflict, match="device 'service' is a console for the application but stack"):
        plan_for(registry, root)


@pytest.mark.parametrize(
    ("source", "toml", "message"),
    [
        ("async def start(x) -> None: ...", "",
         r"\[tool.unik\] main: parameter 'x' of demo_app:start is not a device"),
        ("def start() -> None: ...", "", r"\[tool.unik\] main: demo_app:start must be an `async def` function"),
        ("async def start(*, n=None) -> None: ...", "",
         r"keyword-only parameter 'n' of demo_app:start must be an int, str, float or bool"),
        ("async def start(*, n: int) -> None: ...", "",
         r"keyword-only parameter 'n' of demo_app:start needs a default to become the key --n"),
        ("async def start(*args) -> None: ...", "", r"\*args parameters are not supported"),
        ("async def other() -> None: ...", "", r"\[tool.unik\] main: 'demo_app' has no 'start'"),
        ("import not_a_module_anywhere", "", r"\[tool.unik\] main: cannot import 'demo_app'"),
        ("from unik.devices import Console\nasync def start(c: Console) -> None: ...",
         "[tool.unik.devices.c]\nkind = 'block'\n",
         r"\[tool.unik.devices.c\] kind: 'block' contradicts the annotation"),
        ("async def start(c) -> None: ...", "[tool.unik.devices.c]\nkind = 'floppy'\n",
         r"\[tool.unik.devices.c\] kind: unknown kind 'floppy'"),
        ("from unik.devices import Console\nasync def start(c: Console) -> None: ...",
         "[tool.unik.devices.c]\ncolour = 'red'\n",
         r"\[tool.unik.devices.c\] colour: unknown key for provider fake.console"),
        ("from unik.devices import Console\nasync def start(c: Console) -> None: ...",
         "[tool.unik.devices.d]\nkind = 'block'\n",
         r"\[tool.unik.devices.d\]: 'd' is not a device of this application"),
        ("from unik.devices import Network\nasync def start(n: Network) -> None: ...",
         "[tool.unik.devices.n]\nmtu = 'big'\n", r"\[tool.unik.devices.n\] mtu: expected a int, got 'big'"),
        ("from unik.devices import KVRO\nasync def start(h: KVRO) -> None: ...",
         "[tool.unik.devices.h]\nsource = 'missing'\n", r"\[tool.unik.devices.h\] source: 'missing' does not exist"),
        ("async def start() -> None: ...", "colour = 1\n", r"\[tool.unik\] colour: unknown key"),
        ("async def start() -> None: ...", "[tool.unik.devices]\nx = 1\n",
         r"\[tool.unik.devices.x\]: must be a table"),
    ],
)
def test_config_errors_name_file_table_and_key(
    registry: PluginRegistry, make_app: MakeApp, source: str, toml: str, message: str
) -> None:
    root = make_app(source, toml)
    with pytest.raises(ConfigError, match=message) as err:
        plan_for(registry, root)
    assert str(err.value).startswith(str(root / "pyproject.toml") + ": [")


def test_bad_toml_and_missing_table(registry: PluginRegistry, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.unik\nmain=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Application.load(tmp_path / "pyproject.toml")
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    with pytest.raises(ProjectNotFound, match=r"has no \[tool.unik\] table: run `unik new NAME`"):
        Application.load(tmp_path / "pyproject.toml")
    (tmp_path / "pyproject.toml").write_text("[tool.unik]\nname='x'\nmain='nocolon'\n")
    with pytest.raises(ConfigError, match=r'\[tool.unik\] main: missing or not "module:function"'):
        Application.load(tmp_path / "pyproject.toml")


def test_two_apps_with_same_module_name_do_not_mix(registry: PluginRegistry, make_app: MakeApp) -> None:
    a = make_app("from unik.devices import Console\nasync def start(console: Console) -> None: ...")
    b = make_app("from unik.devices import Stack\nasync def start(stack: Stack) -> None: ...")
    assert [d.kind for d in Application.load(a / "pyproject.toml").devices] == ["console"]
    assert [d.kind for d in Application.load(b / "pyproject.toml").devices] == ["stack"]
