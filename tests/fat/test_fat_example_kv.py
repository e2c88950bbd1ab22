"""examples/kv end to end on the unix target: configure, build, run twice, check the disk."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fat_support import HAVE_DOSFSTOOLS, assert_fsck_clean
from unik_fat.image import FatImage

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kv"


def _unik(cwd: Path, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "unik.cli", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _built_kv(tmp_path: Path) -> Path:
    """examples/kv with an empty 16 MiB disk.img, built for unix."""
    pytest.importorskip("unik_fdio.block", reason="unik-lib-fdio's FileBlock is not installed")
    app = tmp_path / "kv"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("_build", "dist", "*.img"))
    with open(app / "disk.img", "wb") as f:
        f.truncate(16 << 20)
    _unik(app, "configure", "-t", "unix")
    _unik(app, "build")
    return app


def test_kv_example_keeps_its_data_on_fat(tmp_path: Path) -> None:
    app = _built_kv(tmp_path)
    out1 = _unik(app, "run", "--key", "notes/Long File Name.txt", "--value", "hello")
    out2 = _unik(app, "run", "--delete", "meta/none")
    assert "boot #1" in out1 and "boot #2" in out2
    assert "notes/Long File Name.txt = hello" in out2
    with FatImage(app / "disk.img", read_only=True) as fs:
        assert fs.read_bytes("/kv/notes/Long File Name.txt") == b"hello"
        assert fs.read_bytes("/kv/meta/boots") == b"2"
    if HAVE_DOSFSTOOLS:
        assert_fsck_clean(app / "disk.img")


def test_kv_example_answers_mistakes_in_one_line(tmp_path: Path) -> None:
    app = _built_kv(tmp_path)
    pyz = [str(app / "dist" / "kv-unix" / "kv.pyz")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *pyz, *args], cwd=app, capture_output=True, text=True, timeout=120)

    orphan = run("--value", "x")
    assert (orphan.returncode, orphan.stdout) == (2, "--value needs --key: unik run --key NAME --value TEXT\n")
    bad = run("--key", "a:b", "--value", "x")
    assert bad.returncode == 1 and bad.stdout.startswith("the store refused: ") and "Traceback" not in bad.stderr
    gone = run("--delete", "nothing/here")
    assert gone.returncode == 0 and "nothing/here: no such key, nothing deleted" in gone.stdout
    big = run("--key", "big", "--value", "x" * 5000)
    assert f"big = {'x' * 60}... (5000 bytes)\n" in big.stdout
    with FatImage(app / "disk.img") as fs:
        fs.write_bytes("/kv/meta/boots", b"garbage")
    again = run()
    assert again.returncode == 0
    assert "meta/boots holds b'garbage', not a number: counting from 1 again\nboot #1\n" in again.stdout
