"""solo5's ``--net:service=tap0`` dialect: contributed by the solo5 plugin, not carried by the core."""

from __future__ import annotations

from unik import runtime
from unik.keys import Key, KeyValues
from unik.plugins import PluginManager
from unik_solo5 import plugin
from unik_solo5.syntax import solo5_syntax


def test_solo5_option_syntax() -> None:
    keys = {"net": Key("net", "n", per_device=True), "port": Key("port", "p", type="int")}
    argv = ["--net:service=tap0", "--port:8080", "--net=socket", "--", "--net:x=y"]
    assert solo5_syntax(argv, keys) == ["--net", "service=tap0", "--port:8080", "--net=socket", "--", "--net:x=y"]
    parsed = runtime.parse_args(
        KeyValues([keys["net"], Key("verbose", "v", type="bool", default="false")]),
        ["--net:service=tap1", "--verbose"], "prog", syntax=solo5_syntax,
    )
    assert parsed.get("net", device="service") == "tap1"
    assert parsed.get("verbose") is True


def test_the_plugin_contributes_its_dialect_to_the_command_line() -> None:
    keys = {"net": Key("net", "n", per_device=True)}
    bare = PluginManager(entry_points=False)
    assert bare.rewrite_argv(["--net:service=tap0"], keys) == ["--net:service=tap0"]
    pm = PluginManager(entry_points=False)
    pm.register(plugin, name="solo5")
    assert "unik_argv_syntax" in pm.plugins["solo5"].hooks
    assert pm.rewrite_argv(["--net:service=tap0"], keys) == ["--net", "service=tap0"]
