"""Per-target plugin loading: a command loads the plugins of its target, never a wrong answer.

The hook index (``unik.plugins._HookIndex``) remembers which targets and providers each
installed plugin registers; ``PluginManager.target(name)`` and ``providers(target)`` load
only the plugins that registered them.  These check which plugins a manager loaded, that
an edited or upgraded plugin, a missing or wrong index and a duplicate name are handled as
if every plugin were loaded, and that a plugin with a misspelt hook is reported each time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from unik.errors import DuplicateName, UnknownTarget
from unik.plugins import PluginManager, _hook_index_path
from unik.testing import install_entry_point

PLUGIN = '''
from unik.hookspecs import hookimpl
UNIK_API = ">=1.0,<2"

@hookimpl
def unik_register_targets():
    from {module}_defs import TARGETS
    return TARGETS

@hookimpl
def unik_register_providers():
    from {module}_defs import PROVIDERS
    return PROVIDERS
'''
DEFS = '''
from unik.provider import Provider
from unik.target import Target

class T(Target):
    PLUGIN_NAME = {target!r}

class P(Provider):
    PLUGIN_NAME = {provider!r}
    kind = "console"
    implementation = "x:P"
    targets = frozenset({serves!r})

TARGETS = [T] if {target!r} else []
PROVIDERS = [P]
'''
#: Plugin name: (its target, its provider, the targets the provider serves).
PLUGINS = {
    "ixa": ("ta", "ixa.console", ["ta"]),
    "ixb": ("tb", "ixb.console", ["tb"]),
    "ixlib": ("", "ixlib.console", ["ta", "tb"]),
}
ENV = {"UNIK_LOAD_PLUGINS": ",".join(PLUGINS)}


def _write(site: Path, name: str, target: str, provider: str, serves: list[str]) -> None:
    (site / f"{name}_plugin.py").write_text(PLUGIN.format(module=name))
    (site / f"{name}_defs.py").write_text(DEFS.format(target=target, provider=provider, serves=serves))


def _age(site: Path) -> None:
    """Make every file older than the caches' settling margin, so the caches are written."""
    past = time.time() - 60
    for path in [site, *site.rglob("*")]:
        os.utime(path, (past, past))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Three installed plugins whose targets and providers live in modules of their own."""
    site = tmp_path / "site"
    site.mkdir()
    for name, (target, provider, serves) in PLUGINS.items():
        _write(site, name, target, provider, serves)
        install_entry_point(site, f"unik-{name}", name, f"{name}_plugin")
    _age(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield site
    _forget()


def _forget() -> None:
    """Drop the plugins' modules, as a new ``unik`` process would start without them."""
    for name in PLUGINS:
        sys.modules.pop(f"{name}_plugin", None)
        sys.modules.pop(f"{name}_defs", None)


def fresh(**env: str) -> PluginManager:
    """A manager as a new ``unik`` command has it."""
    _forget()
    return PluginManager(env={**ENV, **env}, warn=lambda msg: None)


def test_a_target_loads_only_the_plugins_that_register_it_and_serve_it(site: Path) -> None:
    first = fresh()
    assert type(first.target("ta")).PLUGIN_NAME == "ta"  # nothing remembered: every plugin is asked
    assert set(first.plugins) == {"unik", *PLUGINS}
    assert "ixb.console" in first.providers("ta")  # what each registers is remembered per hook
    pm = fresh()
    pm.target("ta")
    assert set(pm.plugins) == {"unik", "ixa"}
    providers = pm.providers("ta")
    assert set(pm.plugins) == {"unik", "ixa", "ixlib"}  # ixb's provider serves tb only
    assert {"ixa.console", "ixlib.console"} <= set(providers) and "ixb.console" not in providers
    assert set(pm.keys("ta")) == set() and set(pm.plugins) == {"unik", "ixa", "ixlib"}
    assert pm.distribution("unik_register_providers", "ixlib.console") == "unik-ixlib"
    everything = fresh()
    assert set(everything.targets()) == {"ta", "tb"} and "ixb.console" in everything.providers()


def test_an_edited_plugin_is_asked_again(site: Path) -> None:
    fresh().targets()
    fresh().providers()
    _write(site, "ixb", "tb", "ixb.console", ["ta", "tb"])  # its provider now serves ta too
    _age(site)
    os.utime(site / "ixb_defs.py", (time.time() - 30, time.time() - 30))  # edited after the index was made
    pm = fresh()
    assert "ixb.console" in pm.providers("ta")


def test_an_upgraded_plugin_is_asked_again(site: Path) -> None:
    fresh().targets()
    pm = fresh()
    pm.target("ta")
    assert "ixb" not in pm.plugins
    # Version 0.2.0 registers ta too, from files of the same size and time: only the version tells.
    defs = site / "ixb_defs.py"
    before = defs.stat()
    defs.write_text(DEFS.format(target="ta", provider="ixb.console", serves=["tb"]))
    os.utime(defs, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert defs.stat().st_size == before.st_size
    info = next(site.glob("unik_ixb-*.dist-info"))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unik-ixb\nVersion: 0.2.0\n")
    info.rename(site / "unik_ixb-0.2.0.dist-info")
    with pytest.raises(DuplicateName, match="target 'ta' is registered by two plugins: ixa and ixb"):
        fresh().target("ta")


def test_a_missing_or_wrong_index_changes_no_answer(site: Path) -> None:
    fresh().targets()
    index = _hook_index_path()
    records = json.loads(index.read_text())
    assert records["ixa"]["registered"]["unik_register_targets"]["names"] == {"ta": ["ta"]}
    # Wrong: the index says ixa registers another target; ta is then not found where remembered.
    records["ixa"]["registered"]["unik_register_targets"]["names"] = {"elsewhere": ["elsewhere"]}
    index.write_text(json.dumps(records))
    pm = fresh()
    assert type(pm.target("ta")).PLUGIN_NAME == "ta"
    index.write_text("{not json")
    assert type(fresh().target("tb")).PLUGIN_NAME == "tb"
    index.unlink()
    with pytest.raises(UnknownTarget, match="installed: ta, tb"):
        fresh().target("tc")


def test_a_duplicate_name_is_refused_though_its_target_is_another(site: Path) -> None:
    _write(site, "ixb", "tb", "ixa.console", ["tb"])  # the same provider name as ixa's, for tb
    _age(site)
    with pytest.raises(DuplicateName, match=r"provider 'ixa\.console' is registered by two plugins"):
        fresh().providers("ta")  # nothing remembered
    with pytest.raises(DuplicateName, match=r"provider 'ixa\.console' is registered by two plugins"):
        fresh().providers("ta")  # remembered: ixb serves no ta, but shares a name with ixa


def test_a_misspelt_hook_is_reported_every_time(site: Path) -> None:
    (site / "ixb_plugin.py").write_text(PLUGIN.format(module="ixb").replace("def unik_register_providers",
                                                                            "def unik_register_provider"))
    _age(site)
    for _ in range(2):  # a plugin that fails to load is never remembered: it loads, and fails, each time
        warnings: list[str] = []
        _forget()
        pm = PluginManager(env=ENV, warn=warnings.append)
        assert type(pm.target("ta")).PLUGIN_NAME == "ta"
        assert [f.name for f in pm.failures] == ["ixb"]
        assert any("plugin 'ixb'" in w and "unik_register_provider " in w and "did you mean" in w for w in warnings)
