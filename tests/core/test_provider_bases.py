"""What targets' providers share (``unik.provider``): the POSIX device set, named devices, block tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from unik.errors import ConfigError
from unik.keys import KeyValues
from unik.provider import BlockProvider, DeviceProvider, Option, Provider, Request, posix_providers


class _Mine(Provider):
    targets: ClassVar[frozenset[str] | None] = frozenset({"mine"})


def request(kind: str, table: dict[str, Any] | None = None) -> Request:
    return Request("disk", kind, "mine", table or {}, "tool.unik.devices.disk", "pyproject.toml", Path("."),
                   KeyValues(()))


def test_posix_providers_name_and_rank_each_kind_for_the_target() -> None:
    made = posix_providers(_Mine, "mine", {"console": "the board's UART", "monotonic_clock": "", "random": ""},
                           console="uart-console")
    console, clock, random = made
    assert [c.__name__ for c in made] == ["Console", "MonotonicClock", "Random"]
    assert all(issubclass(c, _Mine) and c.serves("mine") and not c.serves("unix") for c in made)
    assert (console.PLUGIN_NAME, console.kind, console.implementation) == (
        "mine.uart-console", "console", "unik.posix:StdoutConsole")
    assert console.description == "the board's UART"
    assert (clock.PLUGIN_NAME, clock.implementation) == ("mine.monotonic-clock", "unik.posix:PosixMonotonicClock")
    assert clock.description == "the kernel's CLOCK_MONOTONIC"  # "" keeps the default
    assert (random.PLUGIN_NAME, random.priority, console.priority) == ("mine.getrandom", -10, 0)
    assert console.__module__ == __name__


def test_posix_providers_refuse_a_kind_unik_posix_does_not_have() -> None:
    with pytest.raises(ValueError, match=r"no device of kind 'network' in unik\.posix \(console, "):
        posix_providers(_Mine, "mine", {"network": "a NIC"})


def test_a_device_provider_passes_the_table_the_name_and_its_per_device_keys() -> None:
    class Nic(DeviceProvider):
        PLUGIN_NAME = "mine.nic"
        kind = "network"
        implementation = "mine.nic:Nic"
        options = (Option("offload", "offloads", "bool", default=True),)
        device_keys = (("ifname", "net"), ("mac", "net_mac"))

    configured = Nic.configure(request("network", {"offload": False}))
    assert configured.options == {"offload": False, "name": "disk"}
    assert {k: (v.key, v.per_device) for k, v in configured.key_options.items()} == {
        "ifname": ("net", True), "mac": ("net_mac", True)}


def test_a_block_provider_checks_its_target_s_sector_sizes() -> None:
    class Disk(BlockProvider):
        PLUGIN_NAME = "mine.disk"
        implementation = "mine.disk:Disk"
        sector_sizes = (512,)
        sector_sizes_why = "the controller's sectors are 512 bytes"

    assert Disk.kind == "block"
    assert Disk.configure(request("block", {"file": "d.img"})).options == {
        "file": "d.img", "read_only": False, "sector_size": 512, "name": "disk"}
    with pytest.raises(ConfigError, match=r"sector_size: must be 512 on the mine target \(the controller's"):
        Disk.configure(request("block", {"sector_size": 4096}))


def test_an_option_s_check_names_the_table_and_the_key() -> None:
    def even(value: int) -> None:
        if value % 2:
            raise ValueError("must be even: give 2, 4, ...")

    class Ring(Provider):
        PLUGIN_NAME = "mine.ring"
        kind = "network"
        implementation = "mine.ring:Ring"
        options = (Option("slots", "ring slots", "int", default=3, check=even),)

    assert Ring.configure(request("network")).options == {"slots": 3}  # a default is the provider's own
    assert Ring.configure(request("network", {"slots": 8})).options == {"slots": 8}
    with pytest.raises(ConfigError, match=r"\[tool\.unik\.devices\.disk\] slots: must be even: give 2, 4"):
        Ring.configure(request("network", {"slots": 7}))
    with pytest.raises(ConfigError, match=r"slots: expected a int, got 'x'"):  # the type first
        Ring.configure(request("network", {"slots": "x"}))
