"""An artifact (and its configuration) is stale when the plugins that build it change, not only its files.

The fake target's distribution ``fake`` is installed again here, ahead of the session's on
``sys.path``: editable (PEP 610's ``direct_url.json`` naming a source tree with a C file the
artifact does not carry, as hvt compiles its runtime's) or as a plain install whose
version moves.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import unik.project as project_module
from core_support import MakeApp
from unik import builders
from unik.project import Project
from unik.target import Artifact
from unik.testing import PluginRegistry, install_entry_point

APP = """
from unik.devices import Console

async def start(console: Console) -> int:
    console.log("hello")
    return 0
"""


def _install(site: Path, version: str, source: Path | None = None, record: str = "") -> Path:
    """The distribution ``fake`` (owning fake_plugin) at ``version``; editable from ``source`` if given.

    ``record``: its ``RECORD``, the digests of a wheel's files.
    """
    for old in site.glob("fake-*.dist-info"):
        shutil.rmtree(old)
    info = install_entry_point(site, "fake", "fake", "fake_plugin", version=version, top_level=["fake_plugin"])
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake\nVersion: {version}\n"
                                   "Requires-Dist: unik-core\nRequires-Dist: pytest; extra == \"test\"\n")
    if source is not None:
        url = {"url": source.as_uri(), "dir_info": {"editable": True}}
        (info / "direct_url.json").write_text(json.dumps(url))
    if record:
        (info / "RECORD").write_text(record)
    return info


def _emits(project: Project, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each build ``project`` makes (its reason), still making it."""
    calls: list[str] = []
    emit: Callable[..., Artifact] = project._emit

    def counted(*args: object, **kwargs: object) -> Artifact:
        calls.append(str(kwargs.get("why", "")))
        return emit(*args, **kwargs)

    monkeypatch.setattr(project, "_emit", counted)
    return calls


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on ``sys.path`` for the test's own ``fake`` distribution."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_find_follows_requirements_but_not_extras_and_reads_editable_sources(site: Path, tmp_path: Path) -> None:
    _install(site, "0.3.0", tmp_path / "builder")
    found = {d.name: d for d in builders.find(["fake"])}
    assert found["fake"].version == "0.3.0" and found["fake"].source == str(tmp_path / "builder")
    assert "unik-core" in found  # required: it writes main.py and bundles the files
    assert "pytest" not in found  # only with an extra
    assert "pluggy" not in found  # the core's own requirements are its composer's


def test_an_edited_builder_source_rebuilds_on_run_and_a_touched_one_does_not(
    registry: PluginRegistry, make_app: MakeApp, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project_module, "settled", lambda stamp: True)  # remember digests at once
    source = tmp_path / "builder"
    template = source / "src" / "fake_builder" / "runtime.c"
    template.parent.mkdir(parents=True)
    template.write_text("int tick;\n")
    (source / "src" / "fake_builder" / "__pycache__").mkdir()
    _install(site, "0.1.0", source)
    root = make_app(APP)
    project = registry.project(root)
    project.configure("fake", {})
    project.build()

    project = registry.project(root)  # each command looks the builders up once
    emits = _emits(project, monkeypatch)
    assert project.run(None, {}) == 0 and emits == []

    past = time.time() - 60
    os.utime(template, (past, past))  # touched, not changed: nothing to rebuild
    (source / "src" / "fake_builder" / "__pycache__" / "x.pyc").write_bytes(b"\0")  # not code
    project = registry.project(root)
    emits = _emits(project, monkeypatch)
    assert project.run(None, {}) == 0 and emits == []

    template.write_text("int tick, tock;\n")  # the C file is not in the artifact, but it builds it
    project = registry.project(root)
    emits = _emits(project, monkeypatch)
    assert project.run(None, {}) == 0 and len(emits) == 1

    project = registry.project(root)
    emits = _emits(project, monkeypatch)
    assert project.run(None, {}) == 0 and emits == []  # built again once, fresh since


def test_an_upgraded_builder_configures_and_builds_again(
    registry: PluginRegistry, make_app: MakeApp, site: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _install(site, "0.1.0")
    root = make_app(APP)
    project = registry.project(root)
    config = project.configure("fake", {})
    before = project.inputs_digest(config)
    project.build()

    _install(site, "0.2.0")  # a new wheel of the target's distribution, its files the same
    project = registry.project(root, quiet=False)
    emits = _emits(project, monkeypatch)
    assert project.run(None, {}) == 0
    err = capfd.readouterr().err
    assert "fake changed since configure: configuring fake again" in err
    assert len(emits) == 1
    assert project.inputs_digest(project.configuration(None)) != before


def test_a_wheel_installed_again_at_the_same_version_with_other_files_rebuilds(
    registry: PluginRegistry, make_app: MakeApp, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(site, "0.1.0", record="fake_builder/runtime.c,sha256=AAAA,10\n")
    root = make_app(APP)
    project = registry.project(root)
    project.configure("fake", {})
    project.build()
    project = registry.project(root)
    emits = _emits(project, monkeypatch)
    assert project.run(None, {}) == 0 and emits == []

    # pip install --force-reinstall of a wheel rebuilt with the same version: RECORD's digests differ
    _install(site, "0.1.0", record="fake_builder/runtime.c,sha256=BBBB,11\n")
    project = registry.project(root)
    emits = _emits(project, monkeypatch)
    assert project.run(None, {}) == 0 and len(emits) == 1
