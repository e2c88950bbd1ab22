"""unik_fdio.packet.find_interface: the NIC by the MAC the host gave, or the only one when none was given."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from unik.errors import DeviceUnavailable
from unik_fdio import packet

LO, ETH0, ETH1 = (1, "lo"), (2, "eth0"), (3, "eth1")
ADDRESSES = {"lo": bytes(6), "eth0": bytes.fromhex("525400c10d01"), "eth1": bytes.fromhex("525400c10d02")}


def _nics(monkeypatch: pytest.MonkeyPatch, *present: tuple[int, str]) -> None:
    monkeypatch.setattr(socket, "if_nameindex", lambda: list(present))
    monkeypatch.setattr(packet, "backend", SimpleNamespace(interface=lambda name: (ADDRESSES[name], 1500)))


def test_the_mac_names_the_nic(monkeypatch: pytest.MonkeyPatch) -> None:
    _nics(monkeypatch, LO, ETH0, ETH1)
    assert packet.find_interface("service", "52:54:00:c1:0d:02") == ("eth1", ADDRESSES["eth1"], 1500)
    with pytest.raises(DeviceUnavailable, match=r"no NIC with address 52:54:00:00:00:09 \(found: eth0=52:54"):
        packet.find_interface("service", "52:54:00:00:00:09")


def test_without_a_mac_the_only_nic_whatever_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    # A disk image booted by a cloud: the cloud chose the address, the image names none.
    _nics(monkeypatch, LO, ETH0)
    assert packet.find_interface("service", None) == ("eth0", ADDRESSES["eth0"], 1500)


@pytest.mark.parametrize("present", [(LO,), (LO, ETH0, ETH1)], ids=["none", "two"])
def test_without_a_mac_anything_but_one_nic_is_refused_with_the_fix(
        monkeypatch: pytest.MonkeyPatch, present: tuple[tuple[int, str], ...]) -> None:
    _nics(monkeypatch, *present)
    with pytest.raises(DeviceUnavailable, match=r"not exactly one NIC.*--net-mac service=MAC"):
        packet.find_interface("service", None)
