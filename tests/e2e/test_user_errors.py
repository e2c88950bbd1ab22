"""Errors the user caused print one sentence with the fix, checked before work where they can be.

A missing disk, a directory for a disk, an unreadable disk, an address the host does
not have, a port in use; and an application's own traceback names the user's files.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import Unik
from example_support import copy_example, write_app
from test_errors_before_work import error_of

BLOCK_APP = """\
from unik.devices import Block, Console


async def start(storage: Block, console: Console) -> None:
    console.log(f"{storage.info.sectors} sectors")
"""


def one_error_line(stderr: str) -> str:
    """The single line a running application printed on stderr (no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_missing_disk_is_named_before_building(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("kv", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    assert error_of(unik("run", "--block", "storage=missing.img", cwd=app, check=False)) == (
        f"block device 'storage': missing.img does not exist (looked in {app}): create it first "
        "(e.g. truncate -s 64M missing.img), or give another with --block storage=FILE"
    )
    # The table's file (disk.img), relative to where `unik run` runs.
    assert error_of(unik("run", cwd=app, check=False)).startswith(
        "block device 'storage': disk.img does not exist")
    (app / "adir").mkdir()
    assert error_of(unik("run", "--block", "storage=adir", cwd=app, check=False)) == (
        "block device 'storage': adir is a directory: give a disk image file with --block storage=FILE"
    )
    assert not (app / "dist").exists()


def test_a_missing_disk_is_named_before_a_vm_image_is_built(tmp_path: Path, unik: Unik) -> None:
    app = write_app(tmp_path, "disk", BLOCK_APP)
    unik("configure", "-t", "virtio", cwd=app)
    assert error_of(unik("run", cwd=app, check=False)).startswith(
        "block device 'storage' needs a disk image: unik run --block storage=FILE")
    assert error_of(unik("run", "--block", "storage=gone.img", cwd=app, check=False)).startswith(
        "block device 'storage': gone.img does not exist")
    assert not (app / "dist").exists()


def test_a_disk_this_user_cannot_open(tmp_path: Path) -> None:
    """As a user who may not write the file (nobody, when the tests run as root)."""
    shared = Path(os.environ.get("TMPDIR", "/tmp")) / f"unik-perm-{os.getpid()}"
    shared.mkdir(mode=0o755)
    try:
        disk = shared / "disk.img"
        disk.write_bytes(b"\0" * 4096)
        disk.chmod(0o444)
        code = ("from unik.target import check_disk_image\n"
                f"check_disk_image('storage', {str(disk)!r}, writable=True)\n")
        cmd = [sys.executable, "-c", code]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=shared)
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines()[-1] == (
            f"unik.errors.RunError: block device 'storage': {disk}: permission denied: this user cannot read and "
            "write it; change its owner or mode (chown/chmod), or run as a user who can"
        )
    finally:
        for path in sorted(shared.rglob("*"), reverse=True):
            path.unlink()
        shared.rmdir()


def test_an_address_the_host_does_not_have(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    unik("configure", "-t", "unix", "--ipv4=127.0.0.1/8", cwd=app)
    assert error_of(unik("run", "--ipv4=192.0.2.77/24", cwd=app, check=False)) == (
        "--ipv4 192.0.2.77/24: 192.0.2.77 is not an address of this host: give --ipv4 one of its addresses "
        "(`ip -4 addr`), or leave --ipv4 unset to listen on all of them"
    )
    assert not (app / "dist").exists()


def test_a_port_in_use(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        unik("configure", "-t", "unix", "--ipv4=127.0.0.1/8", f"--port={port}", cwd=app)
        proc = unik("-q", "run", cwd=app, check=False, timeout=120)
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == (
        f"error: cannot listen on 127.0.0.1:{port}: another program listens on port {port}: stop it, "
        "or choose another port"
    )


def test_an_application_traceback_names_the_users_files(tmp_path: Path, unik: Unik) -> None:
    app = write_app(tmp_path, "oops", "from unik.devices import Console\n\n\n"
                    "def divide(n: int) -> int:\n    return 10 // n\n\n\n"
                    "async def start(console: Console) -> None:\n    console.log('dividing')\n    divide(0)\n")
    unik("configure", "-t", "unix", cwd=app)
    proc = unik("run", cwd=app, check=False)
    assert proc.returncode == 1 and proc.stdout == "dividing\n"
    source = app / "src" / "oops_app" / "__init__.py"
    assert f'File "{source}", line 10, in start\n    divide(0)\n' in proc.stderr
    assert f'File "{source}", line 5, in divide\n    return 10 // n\n' in proc.stderr
    assert f'File "{app / "_build" / "unix" / "main.py"}", line ' in proc.stderr
    assert ".cache/unik" not in proc.stderr and "runtime.py" not in proc.stderr
    assert proc.stderr.rstrip().endswith("ZeroDivisionError: integer division or modulo by zero")


def test_unik_traceback_shows_a_user_errors_traceback(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("kv", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    (app / "disk.img").write_bytes(b"")  # a zero-length disk: FileBlock refuses it as it connects
    quiet = unik("-q", "run", cwd=app, check=False)
    assert quiet.returncode == 1
    line = one_error_line(quiet.stderr)
    assert line == "error: block device 'storage': disk.img is empty; give it a size, e.g. truncate -s 64M disk.img"
    loud = unik("-q", "run", cwd=app, check=False, env={"UNIK_TRACEBACK": "1"})
    assert loud.returncode == 1 and "Traceback" in loud.stderr and loud.stderr.rstrip().endswith(line)


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_a_top_level_option_after_the_command(tmp_path: Path, unik: Unik, flag: str) -> None:
    app = copy_example("hello", tmp_path)
    assert error_of(unik("configure", flag, cwd=app, check=False)) == (
        f"{flag} is an option of unik itself: give it before the command (`unik {flag} configure ...`)"
    )
