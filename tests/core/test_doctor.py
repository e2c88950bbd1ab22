"""``unik doctor``: targets report host checks; failures of required ones give status 1."""

from __future__ import annotations

import io
from collections.abc import Sequence

from unik import hookimpl
from unik.cli import doctor
from unik.target import Check, Target
from unik.testing import PluginRegistry


class Picky(Target):
    PLUGIN_NAME = "picky"

    def doctor(self) -> Sequence[Check]:
        return [
            Check("compiler", True, "/usr/bin/cc"),
            Check("hypervisor", False, "no /proc/xen", fix="boot the host under Xen"),
            Check("bridge", False, "no bridge", fix="ip link add xenbr0 type bridge", required=False),
        ]


class Easy(Target):
    PLUGIN_NAME = "easy"


class Plugin:
    UNIK_API = ">=1.0,<2"

    @hookimpl
    def unik_register_targets(self) -> Sequence[type[Target]]:
        return [Picky, Easy]


def test_doctor_prints_each_check_and_fails_on_a_missing_required_one(unik_plugins: PluginRegistry) -> None:
    unik_plugins.add(Plugin(), "picky-plugin")
    out = io.StringIO()
    assert doctor(unik_plugins, ["picky"], out) == 1
    text = out.getvalue()
    assert "[ok] compiler: /usr/bin/cc" in text
    assert "[missing] hypervisor: no /proc/xen" in text and "-> boot the host under Xen" in text
    assert "[warning] bridge: no bridge" in text


def test_a_target_without_checks_passes_and_only_warnings_pass(unik_plugins: PluginRegistry) -> None:
    unik_plugins.add(Plugin(), "picky-plugin")
    out = io.StringIO()
    assert doctor(unik_plugins, ["easy"], out) == 0
    assert out.getvalue() == "easy: nothing to check\n"
    all_targets = io.StringIO()
    assert doctor(unik_plugins, None, all_targets) == 1  # every target, picky included
    assert all_targets.getvalue().startswith("easy: nothing to check\npicky:")
