"""QEMU's user network without booting: --publish parsing, host-port checks, the -netdev value."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from unik.errors import RunError
from unik.keys import Key, KeyValues
from unik.progress import Progress
from unik.target import RunContext
from unik_virtio.providers import RUN_KEYS
from unik_virtio.target import _devices
from unik_vmimage import usernet
from unik_vmimage.keys import PUBLISH
from unik_vmimage.usernet import port_keys

NIC = {"name": "service", "kind": "network", "qemu_device": "virtio-net", "mac": "52:54:00:aa:bb:cc"}


@pytest.mark.parametrize(("text", "rule"), [
    ("8080:80", usernet.Publish("0.0.0.0", 8080, 80, "tcp")),
    ("127.0.0.1:8080:80", usernet.Publish("127.0.0.1", 8080, 80, "tcp")),
    ("5353:53/udp", usernet.Publish("0.0.0.0", 5353, 53, "udp")),
    (" 1:65535/tcp ", usernet.Publish("0.0.0.0", 1, 65535, "tcp")),
])
def test_publish_rules_parse_like_docker(text: str, rule: usernet.Publish) -> None:
    assert usernet.parse_publish(text) == rule


@pytest.mark.parametrize(("text", "message"), [
    ("8080", "write [HOST_IP:]HOST_PORT:GUEST_PORT"),
    ("0:80", "the host port 0 is not between 1 and 65535"),
    ("8080:70000", "the guest port 70000 is not between 1 and 65535"),
    ("8080:80/sctp", "the protocol is tcp or udp, not sctp"),
    ("10.0.0.300:8080:80", "10.0.0.300 is not an IPv4 address"),
    ("localhost:8080:80", "write [HOST_IP:]HOST_PORT:GUEST_PORT"),
])
def test_bad_publish_rules_are_one_sentence_errors(text: str, message: str) -> None:
    with pytest.raises(RunError) as exc:
        usernet.parse_publish(text)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_repeated_publish_options_collect_and_a_later_command_replaces_them() -> None:
    configured = KeyValues([PUBLISH]).with_args({"publish": ["8080:80", "127.0.0.1:9090:90/udp"]})
    assert configured.raw("publish") == "8080:80,127.0.0.1:9090:90/udp"
    assert [str(r) for r in usernet.parse_all(configured.raw("publish"))] == ["8080:80/tcp", "127.0.0.1:9090:90/udp"]
    assert configured.with_args({"publish": ["1:2"]}).raw("publish") == "1:2"
    assert KeyValues.from_json(configured.to_json()).keys["publish"].repeatable


def test_a_repeatable_key_is_a_plain_string_key() -> None:
    with pytest.raises(Exception, match="plain string key"):
        Key("ports", "", type="int", repeatable=True)


def test_one_host_port_published_twice_is_refused() -> None:
    with pytest.raises(RunError, match="use the same host port"):
        usernet.parse_all("8080:80,127.0.0.1:8080:81")
    assert len(usernet.parse_all("8080:80,8080:80/udp")) == 2  # tcp and udp ports are apart


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port another program (this test) listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_host_port_in_use_is_refused_before_booting(listener: int) -> None:
    for spec in (f"{listener}:8080", f"127.0.0.1:{listener}:8080"):
        with pytest.raises(RunError) as exc:
            usernet.check_free(usernet.parse_publish(spec))
        assert "is already in use on this host: choose another host port" in str(exc.value)
    usernet.check_free(usernet.parse_publish(f"{listener}:8080/udp"))  # the UDP port is free


def test_guest_ports_are_checked_against_the_application_port_keys() -> None:
    rules = usernet.parse_all("8080:80")
    with pytest.raises(RunError, match=r"listens on --port 8080, not on 80: publish that port \(--publish 8080:8080\)"):
        usernet.check_guest_ports(rules, {"port": 8080})
    usernet.check_guest_ports(rules, {"port": 80})
    usernet.check_guest_ports(rules, {})  # no port keys: not knowable, not checked
    usernet.check_guest_ports(usernet.parse_all("5353:53/udp"), {"port": 8080})  # only TCP is checked
    app = KeyValues([Key("port", "", type="int", default="8080"), Key("admin_port", "", type="int"),
                     Key("ports", "", type="int", default="1"), Key("name", "", default="x")])
    assert port_keys(app) == {"port": 8080}
    assert port_keys(app.with_args({"admin_port": ["9000"]})) == {"port": 8080, "admin_port": 9000}


def test_the_netdev_forwards_to_slirps_dhcp_address_or_a_static_one() -> None:
    rules = usernet.parse_all("127.0.0.1:18080:8080,5353:53/udp")
    assert usernet.netdev("service", rules) == (
        "user,id=net-service,hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=udp:0.0.0.0:5353-:53")
    assert usernet.netdev("service", rules[:1], "192.168.7.20/24") == (
        "user,id=net-service,net=192.168.7.0/24,host=192.168.7.1,dns=192.168.7.2,dhcpstart=192.168.7.20,"
        "hostfwd=tcp:127.0.0.1:18080-192.168.7.20:8080")
    assert "host=192.168.7.254,dns=192.168.7.1," in usernet.netdev("s", [], "192.168.7.20/24", "192.168.7.254")
    with pytest.raises(RunError, match="outside the guest's subnet"):
        usernet.netdev("s", [], "192.168.7.20/24", "10.0.0.1")
    with pytest.raises(RunError, match="/29 or larger"):
        usernet.netdev("s", [], "192.168.7.1/30")


def test_a_nic_on_the_user_network_gets_the_offloads_off_and_no_tap() -> None:
    devices, args, used = _devices([NIC], {}, {"service": "user"}, usernet.parse_all("18080:8080"), (None, None),
                                  {"service": "52:54:00:aa:bb:cc"})
    assert args == ["-netdev", "user,id=net-service,hostfwd=tcp:0.0.0.0:18080-:8080"]
    assert devices == ["virtio-net,netdev=net-service,mac=52:54:00:aa:bb:cc,guest_csum=off,guest_tso4=off,"
                       "guest_tso6=off,guest_ecn=off,guest_ufo=off"]
    assert used == {"service": "user"}


def _ctx(**options: list[str]) -> RunContext:
    return RunContext(root=Path("."), progress=Progress(quiet=True),
                      options=KeyValues(RUN_KEYS).with_args(options))


def test_publish_needs_one_nic_on_the_user_network_before_anything_is_built() -> None:
    app = KeyValues([Key("port", "", type="int", default="8080")])
    with pytest.raises(RunError, match=r"add --net DEVICE=user \(e.g. --net service=user\)"):
        usernet.preflight(app, _ctx(publish=["18080:8080"], net=["service=tap0"]), ["service"], set())
    with pytest.raises(RunError, match="all on QEMU's user network"):
        usernet.preflight(app, _ctx(publish=["18080:8080"], net=["a=user", "b=user"]), ["a", "b"], set())
    with pytest.raises(RunError, match="listens on --port 8080, not on 80"):
        usernet.preflight(app, _ctx(publish=["18080:80"], net=["service=user"]), ["service"], set())
    assert usernet.preflight(app, _ctx(net=["service=user"]), ["service"], set()) == []  # outbound only
    with pytest.raises(RunError, match="unik run --net service=user"):
        _devices([NIC], {}, {}, [], (None, None), {"service": "52:54:00:aa:bb:cc"})
