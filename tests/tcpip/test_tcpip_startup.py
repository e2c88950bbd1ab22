"""Start-up cost: what importing the stack loads; the plain classes that replaced dataclasses."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
from unik_tcpip.tcp import TcpConfig, TcpStats

# What the stack's import adds to what its dependencies (asyncio, unik's core) load anyway.
_NEW_MODULES = """
import sys, json
import asyncio, typing, unik.devices, unik.errors, unik.posix
before = set(sys.modules)
import unik_tcpip.stack
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_stack_import_does_not_load_dhcp() -> None:
    out = subprocess.run([sys.executable, "-c", _NEW_MODULES], capture_output=True, text=True, check=True).stdout
    new = set(json.loads(out))
    assert {"unik_tcpip.stack", "unik_tcpip.tcp", "unik_tcpip.iface"} <= new
    assert "unik_tcpip.dhcp" not in new
    assert not new & {"hashlib", "dataclasses"}, new


@pytest.mark.parametrize("cls", [TcpConfig, TcpStats])
def test_record_classes_behave_like_the_dataclasses_they_replace(cls: type[TcpConfig | TcpStats]) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == list(cls._fields)
    default = cls()
    # Positional arguments in field order, keywords, and the defaults.
    assert cls(*[p.default for p in params]) == default
    assert cls(**{p.name: p.default for p in params}) == default
    inner = ", ".join(f"{p.name}={p.default!r}" for p in params)
    assert repr(default) == f"{cls.__name__}({inner})"
    changed = cls(**{params[0].name: 12345})
    assert changed != default and getattr(changed, params[0].name) == 12345
    assert default.__eq__(object()) is NotImplemented
    with pytest.raises(TypeError):
        hash(default)
    with pytest.raises(AttributeError):
        default.no_such_field = 1  # type: ignore[attr-defined]
    setattr(default, params[-1].name, 7)
    assert getattr(default, params[-1].name) == 7


def test_tcp_config_defaults() -> None:
    cfg = TcpConfig()
    assert (cfg.rcv_buf, cfg.initial_rto_ns, cfg.delayed_ack_ns, cfg.keepalive_idle_ns) == (
        1 << 20, 10**9, 40 * 10**6, 2 * 3600 * 10**9)
    assert cfg.nagle and cfg.syn_cookies and not cfg.keepalive and cfg.congestion_control == "newreno"
