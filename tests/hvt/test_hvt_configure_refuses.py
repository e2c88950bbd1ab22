"""``unik configure -t hvt`` refuses dependencies pip installed as shared objects hvt cannot link, before the build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hvt_support import ROOT, unik
from unik.application import Application
from unik.errors import BuildError
from unik.pydeps import ensure

REFUSAL = "hvt links extension modules into CPython from their C sources, and these come without one"


def copy_example(name: str, tmp_path: Path) -> Path:
    app = tmp_path / name
    shutil.copytree(ROOT / "examples" / name, app, ignore=shutil.ignore_patterns("_build", "dist"))
    return app


@pytest.fixture(scope="module")
def fastapi_site() -> None:
    """examples/fastapi's dependencies, installed by pip as ``unik build`` installs them (cached after once)."""
    try:
        ensure(Application.load(ROOT / "examples" / "fastapi" / "pyproject.toml").dependencies)
    except BuildError as exc:
        pytest.skip(f"pip could not install examples/fastapi's dependencies here: {exc}")


def test_configure_refuses_installed_shared_objects(fastapi_site: None, tmp_path: Path) -> None:
    app = copy_example("fastapi", tmp_path)
    proc = unik(app, "configure", "-t", "hvt", check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"{app / 'pyproject.toml'}: [project] dependencies: {REFUSAL}" in proc.stderr, proc.stderr
    for named in ("httptools (httptools/parser/parser.cpython-", "pydantic-core (pydantic_core/_pydantic_core.",
                  "; build for virtio, xen or spt, or drop the dependency"):
        assert named in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    # nothing configured: no plan, no main.py, and build says configure failed
    assert not (app / "_build" / "hvt").exists()
    assert not (app / "_build" / "current").exists()
    build = unik(app, "build", check=False)
    assert build.returncode != 0 and "`unik configure -t hvt` failed" in build.stderr, build.stderr


def test_configure_leaves_uninstalled_dependencies_to_the_build(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # pip has not installed them for this cache: configure does not install them; the build checks
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    app = copy_example("fastapi", tmp_path)
    unik(app, "-q", "configure", "-t", "hvt")
    assert (app / "_build" / "hvt" / "plan.json").is_file()
    assert not (tmp_path / "cache" / "unik" / "deps").exists()


def test_configure_takes_an_application_it_can_link(tmp_path: Path) -> None:
    app = copy_example("http", tmp_path)
    unik(app, "-q", "configure", "-t", "hvt")
    assert (app / "_build" / "hvt" / "plan.json").is_file()
