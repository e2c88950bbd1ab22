"""What a newcomer types by mistake gets one sentence with the fix, and nothing is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from core_support import MakeApp
from unik.cli import main
from unik.progress import counted


def _error(capfd: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capfd.readouterr().err
    assert err.startswith("unik: error: ") and err.count("\n") == 1, err  # one line, no traceback
    return err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("class", "'class' would make the package 'class', a Python keyword: choose another name, "
                  "e.g. `unik new class_app`"),
        ("Import", "would make the package 'import', a Python keyword"),
        ("asyncio", "'asyncio' would make the package 'asyncio', which would hide the standard library's "
                    "'asyncio' module"),
        ("json", "hide the standard library's 'json' module"),
        ("test", "hide the standard library's 'test' module"),
        ("unik", "would hide the installed module 'unik' ("),
        ("my-app-", "is not a valid name: use letters, digits, - and _, starting with a letter and ending"),
        ("2fast", "is not a valid name"),
        ("a.b", "is not a valid name"),
    ],
)
def test_new_refuses_names_that_cannot_be_the_package(
    name: str, message: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    err = _error(capfd, ["-C", str(tmp_path), "new", name])
    assert message in err
    assert list(tmp_path.iterdir()) == []


def test_new_accepts_soft_keywords_and_dashes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # `match` is a soft keyword: `import match` is valid Python.
    assert main(["-C", str(tmp_path), "new", "match"]) == 0
    assert (tmp_path / "match" / "src" / "match" / "__init__.py").is_file()
    assert main(["-C", str(tmp_path), "new", "My-Shop"]) == 0
    assert (tmp_path / "My-Shop" / "src" / "my_shop" / "__init__.py").is_file()
    assert 'requires = ["setuptools>=68", "unik-core>=' in (tmp_path / "My-Shop" / "pyproject.toml").read_text()


@pytest.mark.parametrize("command", [["describe"], ["new", "shop"], ["configure", "-t", "unix"], ["clean"]])
def test_project_dir_that_does_not_exist_is_named(
    command: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nonexistent"
    err = _error(capfd, ["-C", str(missing), *command])
    assert f"-C {missing}: the directory {missing} does not exist" in err
    assert not missing.exists()


def test_project_dir_that_is_a_file_is_named(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "pyproject.toml"
    file.write_text("")
    err = _error(capfd, ["--project", str(file), "describe"])
    assert f"-C {file}: {file} is not a directory (give the application's directory)" in err


def test_configure_counts_devices_in_the_singular_and_plural(
    make_app: MakeApp, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIK_LOAD_PLUGINS", "fake")
    one = make_app("from unik.devices import Console\nasync def start(console: Console) -> None: ...\n")
    assert main(["-C", str(one), "configure", "-t", "fake"]) == 0
    assert f"configured demo for fake: 1 device, {one / '_build' / 'fake' / 'main.py'}" in capfd.readouterr().err
    two = make_app("from unik.devices import Console, Random\n"
                   "async def start(console: Console, random: Random) -> None: ...\n")
    assert main(["-C", str(two), "configure", "-t", "fake"]) == 0
    assert "configured demo for fake: 2 devices, " in capfd.readouterr().err


def test_counted() -> None:
    assert [counted(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert counted(1, "problem") == "1 problem" and counted(3, "entry", "entries") == "3 entries"
