"""``unik doctor -t unix``: the TUN device, CAP_NET_ADMIN or a TAP the user owns, the C data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from unik.doctor import CAP_NET_ADMIN, capabilities, has_capability, own_taps
from unik.target import Check
from unik_unix.doctor import doctor_checks


def fake_host(tmp_path: Path, *, tun: bool = True, cap_eff: int = 0, taps: dict[str, int] | None = None) -> Path:
    """A root with proc/self/status, dev/net/tun (a plain file) and sys/class/net/*/owner."""
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/status").write_text(f"Name:\tpython\nCapEff:\t{cap_eff:016x}\n")
    if tun:
        (tmp_path / "dev/net").mkdir(parents=True)
        (tmp_path / "dev/net/tun").write_text("")
    for name, owner in (taps or {}).items():
        (tmp_path / "sys/class/net" / name).mkdir(parents=True)
        (tmp_path / "sys/class/net" / name / "owner").write_text(f"{owner}\n")
    (tmp_path / "sys/class/net/eth0").mkdir(parents=True, exist_ok=True)  # not a TAP: no owner file
    return tmp_path


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name.split(" (")[0]: c for c in checks}


def test_without_tun_or_cap_net_admin_tap_networking_is_a_warning_with_the_fix(tmp_path: Path) -> None:
    checks = by_name(doctor_checks(fake_host(tmp_path, tun=False)))
    tun, cap = checks["/dev/net/tun"], checks["CAP_NET_ADMIN"]
    assert (tun.ok, tun.required, tun.detail) == (False, False, "absent")
    assert "modprobe tun" in tun.fix and "--device /dev/net/tun" in tun.fix
    assert (cap.ok, cap.required, cap.detail) == (False, False, "not held, and you own no persistent TAP")
    assert "ip tuntap add tap0 mode tap vnet_hdr user $USER" in cap.fix
    assert all(c.ok or not c.required for c in checks.values())  # the socket stack needs none of it


def test_a_persistent_tap_the_user_owns_is_enough(tmp_path: Path) -> None:
    root = fake_host(tmp_path, taps={"tap7": os.geteuid(), "tapx": os.geteuid() + 1})
    assert own_taps(root) == ["tap7"]
    cap = by_name(doctor_checks(root))["CAP_NET_ADMIN"]
    assert cap.ok and cap.detail == "not held; TAPs you own and can use: tap7"


def test_cap_net_admin_is_read_from_the_effective_set(tmp_path: Path) -> None:
    root = fake_host(tmp_path, cap_eff=1 << CAP_NET_ADMIN)
    assert capabilities(root) == 1 << CAP_NET_ADMIN and has_capability(CAP_NET_ADMIN, root)
    assert by_name(doctor_checks(root))["CAP_NET_ADMIN"].ok


def test_the_real_host(capfd: pytest.CaptureFixture[str]) -> None:
    from unik.cli import main

    assert main(["doctor", "-t", "unix"]) == 0  # nothing is required
    out = capfd.readouterr().out.splitlines()
    assert out[0] == "unix:"
    assert any(line.startswith("  [ok] Python >= 3.10 (runs the .pyz): ") for line in out)
    assert any("C accelerators of unik-lib-fdio (_tap, _block)" in line for line in out)
    if os.geteuid() == 0:
        assert "  [ok] CAP_NET_ADMIN (creating TAP devices for --net DEVICE=TAP): held: TAP devices can be " \
               "created and set up" in out
