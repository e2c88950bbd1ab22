"""unik inspect on the process targets: what the pyz and the spt directory hold, by kind, with sizes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from example_support import copy_example
from lifecycle_support import unik


def test_inspect_a_pyz_by_kind_with_sizes_and_totals(tmp_path: Path) -> None:
    pytest.importorskip("unik_unix", reason="the unix target is not installed")
    app = copy_example("http", tmp_path)
    state = tmp_path / "state"
    unik(app, "configure", "-t", "unix", "--ipv4=127.0.0.1/8", state=state)
    unik(app, "build", state=state)
    data = json.loads(unik(app, "inspect", "--json", state=state).stdout)
    assert data["target"] == "unix"
    files = {f["path"]: f for f in data["files"]}
    assert files["assets/htdocs/index.html"]["kind"] == "baked file"
    assert files["http_app/__init__.py"]["kind"] == "application"
    assert files["unik/runtime.py"] == {"path": "unik/runtime.py", "size": files["unik/runtime.py"]["size"],
                                        "kind": "library", "name": "unik"}
    assert files["main.py"]["kind"] == files["__main__.py"]["kind"] == "generated"
    with zipfile.ZipFile(app / "dist" / "http-unix" / "http.pyz") as zf:
        sizes = {i.filename.removeprefix("payload/"): i.file_size for i in zf.infolist() if not i.is_dir()}
    assert {p: f["size"] for p, f in files.items()} == sizes
    assert data["total"] == {"files": len(sizes), "bytes": sum(sizes.values())}
    text = unik(app, "inspect", state=state).stdout
    assert text.splitlines()[0] == f"{app / 'dist' / 'http-unix'} (unix)"
    assert "baked file: 1 file" in text and "application: 1 file" in text and "total: " in text
    listed = unik(app, "inspect", "-l", str(app / "dist" / "http-unix"), state=state).stdout
    assert f"{sizes['assets/htdocs/index.html']:>10}  assets/htdocs/index.html" in listed


def test_inspect_the_spt_directory(tmp_path: Path) -> None:
    pytest.importorskip("unik_solo5", reason="the spt target is not installed")
    app = copy_example("hello", tmp_path)
    state = tmp_path / "state"
    unik(app, "configure", "-t", "spt", state=state)
    unik(app, "build", state=state)
    data = json.loads(unik(app, "inspect", "--json", state=state).stdout)
    kinds = {f["path"]: f["kind"] for f in data["files"]}
    assert kinds["app/__spt__.py"] == kinds["app/manifest.json"] == kinds["app/main.py"] == "generated"
    assert kinds["app/hello/__init__.py"] == "application"
    assert kinds["app/unik_solo5/boot.py"] == "library"
    assert "tender" in data["facts"]


def test_inspect_before_a_build_says_what_to_do(tmp_path: Path) -> None:
    app = copy_example("hello", tmp_path)
    unik(app, "configure", "-t", "unix", state=tmp_path / "state")
    out = unik(app, "inspect", state=tmp_path / "state", check=False)
    assert out.returncode == 1 and "run `unik build` first" in out.stderr
