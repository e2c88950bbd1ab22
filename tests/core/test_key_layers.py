"""A later layer of keys (unik run's over configure's) replaces a key's values or only some devices'."""

from __future__ import annotations

import pytest
from unik.errors import BadKey
from unik.keys import Key, KeyValues, layer_args

NET = Key("net", "network", default="socket", per_device=True)
PORT = Key("port", "port", type="int", default="8080")
KERNEL = Key("kernel", "kernel", default="debian", stage="configure")


def configured() -> KeyValues:
    return KeyValues([NET, PORT, KERNEL]).with_args({"net": ["service=tap0", "admin=tap1"], "port": ["81"]})


def test_a_plain_value_replaces_every_binding_of_the_earlier_layer() -> None:
    keys = configured().layered({"net": ["socket"]})
    assert keys.raw("net") == "socket" and keys.bindings("net") == {}
    assert keys.raw("net", "service") == "socket"  # configure's tap0 no longer wins


def test_a_binding_replaces_only_its_device() -> None:
    keys = configured().layered({"net": ["service=tap9"]})
    assert keys.bindings("net") == {"service": "tap9", "admin": "tap1"}
    assert keys.get("port") == 81  # untouched keys stay


def test_within_one_layer_a_plain_value_and_bindings_combine() -> None:
    keys = configured().layered({"net": ["tap", "service=tap5"]})
    assert keys.raw("net") == "tap" and keys.bindings("net") == {"service": "tap5"}


def test_layer_args_does_the_same_on_command_line_texts() -> None:
    keys = {k.name: k for k in (NET, PORT, KERNEL)}
    base = {"net": ["service=tap0"], "port": ["81"]}
    assert layer_args(base, {"net": ["socket"]}, keys) == {"net": ["socket"], "port": ["81"]}
    assert layer_args(base, {"net": ["admin=tap1"]}, keys) == {"net": ["service=tap0", "admin=tap1"], "port": ["81"]}
    assert layer_args(base, {"port": ["82"]}, keys) == {"net": ["service=tap0"], "port": ["82"]}


def test_a_stage_is_configure_or_run_and_survives_json() -> None:
    assert Key.from_json(KERNEL.to_json()).stage == "configure"
    assert Key.from_json(PORT.to_json()).stage == "run" and "stage" not in PORT.to_json()
    with pytest.raises(BadKey, match="stage 'build' is neither `configure` nor `run`"):
        Key("x", "x", stage="build")  # type: ignore[arg-type]
