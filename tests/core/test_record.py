"""unik.record: the value classes that replace dataclasses on a unikernel's boot path."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from unik.devices import FileStat, IPv4Config, NetworkStats, Offloads
from unik.keys import Key, KeyValue
from unik.record import FrozenRecord, Record


def test_frozen_records_compare_hash_copy_and_pickle_like_dataclasses() -> None:
    a, b = IPv4Config("10.0.0.2", 24), IPv4Config("10.0.0.2", 24, None)
    assert a == b and hash(a) == hash(b) and a != IPv4Config("10.0.0.3", 24)
    assert repr(a) == "IPv4Config(address='10.0.0.2', prefix=24, gateway=None)"
    assert pickle.loads(pickle.dumps(a)) == a and copy.copy(a) == a and copy.deepcopy(a) == a
    assert {a: 1}[b] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.prefix = 16  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del a.gateway  # type: ignore[misc]
    assert Offloads(tso=True) == Offloads(False, True, False, False) != Offloads()
    assert a != ("10.0.0.2", 24, None)


def test_mutable_records_count_and_are_unhashable() -> None:
    stats = NetworkStats()
    stats.rx_frames += 2
    assert stats == NetworkStats(rx_frames=2) and stats != NetworkStats()
    assert pickle.loads(pickle.dumps(stats)) == stats
    with pytest.raises(TypeError):
        hash(stats)
    with pytest.raises(AttributeError):
        stats.other = 1  # type: ignore[attr-defined]


def test_defaults_are_fresh_per_instance() -> None:
    one, two = FileStat("a", 1, False, 0), FileStat("b", 1, False, 0)
    assert one.attributes == {} and one.attributes is not two.attributes
    assert KeyValue().devices == {} and KeyValue().devices is not KeyValue().devices


def test_key_checks_its_name_on_construction() -> None:
    assert Key("ipv4_gateway", "gw").option == "--ipv4-gateway"
    with pytest.raises(Exception, match="bad key name"):
        Key("Bad-Name", "x")


def test_slots_must_match_the_annotated_fields() -> None:
    with pytest.raises(TypeError, match="exactly the annotated fields"):
        class Wrong(FrozenRecord):
            __slots__ = ("a",)
            a: int
            b: int

    class Point(Record):
        __slots__ = ("x", "y")
        y: int
        x: int

        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    assert repr(Point(1, 2)) == "test_slots_must_match_the_annotated_fields.<locals>.Point(y=2, x=1)"
