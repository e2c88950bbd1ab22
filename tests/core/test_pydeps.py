"""An application's third-party dependencies: pip installs their closure, cached; uvloop is refused.

pip reaches the package index configured on this host (PyPI here): these tests install
real distributions, as a build does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from unik import pydeps
from unik.bundle import BundleFile, dependency_modules, size_report
from unik.errors import BuildError


def test_unik_distributions_come_from_the_host_and_the_rest_from_pip() -> None:
    reqs = ["fastapi>=0.100", "unik-lib-tls", "Unik_Core", "httptools; sys_platform == 'linux'"]
    assert pydeps.third_party(reqs) == ["fastapi>=0.100", "httptools; sys_platform == 'linux'"]
    assert pydeps.ensure(["unik-lib-tls"]) is None  # nothing for pip: no installation at all


def test_install_resolves_the_closure_once_and_reuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    site = pydeps.ensure(["h11"])
    assert site is not None and site.path.is_relative_to(tmp_path / "unik" / "deps")
    assert [(d.name, d.requested) for d in site.distributions] == [("h11", True)]
    owner = site.distribution_of()
    assert owner["h11"] == "h11" and any(top.endswith(".dist-info") for top in owner)

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran again")

    monkeypatch.setattr(subprocess, "run", no_pip)
    again = pydeps.ensure(["h11"])
    assert again == site


def test_uvloop_pulled_in_by_another_requirement_is_refused_naming_it(tmp_path: Path) -> None:
    # the real resolution of uvicorn[standard], which requires uvloop on Linux
    with pytest.raises(BuildError) as err:
        pydeps.install(["uvicorn[standard]"])
    text = str(err.value)
    assert "pull in uvloop (required by uvicorn " in text
    assert "replaces asyncio's event loop" in text and "without the [standard] extra" in text
    assert not pydeps.site_path(["uvicorn[standard]"]).exists()


def test_pip_failure_says_what_pip_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(BuildError, match=r"pip could not install the application's dependencies \(h11\):\n.*h11"):
        pydeps.install(["h11"])


def test_size_report_and_dependency_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "unik" / "deps").mkdir(parents=True)

    def file(dest: str, size: int, dist: str) -> BundleFile:
        where = tmp_path if dist.startswith("unik") or not dist else tmp_path / "unik" / "deps"
        path = where / dest.replace("/", "_")
        path.write_bytes(b"x" * size)
        return BundleFile(dest, path, dist)

    files = [file("fastapi/__init__.py", 300, "fastapi"), file("fastapi/routing.py", 700, "fastapi"),
             file("unik/runtime.py", 500, "unik-core"), file("main.py", 50, ""),
             file("fastapi-1.0.dist-info/METADATA", 10, "fastapi"), file("ns/mod.py", 5, "ns-dist")]
    assert [(d.name, d.files, d.bytes) for d in size_report(files)] == [
        ("fastapi", 3, 1010), ("unik-core", 1, 500), ("(generated)", 1, 50), ("ns-dist", 1, 5)]
    assert dependency_modules(files) == ["fastapi", "fastapi.routing", "ns.mod"]
