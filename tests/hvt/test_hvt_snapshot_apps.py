"""Pre-initialised applications: unik build -t hvt saves the guest after its imports, unik run restores it."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from hvt_support import ROOT, build_app, needs_build_tools, needs_kvm, needs_tap_guests, tap_guest_namespace, unik
from tap_support import curl_in, serving

#: What unik-hvt --profile says in a guest restored from its snapshot, and in one booted cold.
RESTORED = "since the runtime resumed from its snapshot"
COLD = "since the runtime started"


def _example(tmp: Path, name: str, *configure: str) -> Path:
    app = tmp / name
    shutil.copytree(ROOT / "examples" / name, app, ignore=shutil.ignore_patterns("_build", "dist"))
    unik(app, "-q", "configure", "-t", "hvt", *configure)
    unik(app, "-q", "build")
    return app


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    needs_kvm()
    needs_build_tools()
    return _example(tmp_path_factory.mktemp("hello"), "hello")


def test_build_saves_a_snapshot_bound_to_the_elf(hello: Path) -> None:
    out = hello / "dist" / "hello-hvt"
    record = json.loads((out / "hello.snap.json").read_text())
    assert record["snapshot"] == "hello.snap" and record["mem_mib"] == 256
    assert record["elf"]["sha256"] == hashlib.sha256((out / "hello.hvt").read_bytes()).hexdigest()
    assert record["bytes"] == (out / "hello.snap").stat().st_size
    metadata = record["bytes"] - record["pages"] * 4096  # the header and the runs: whole pages
    assert metadata > 0 and metadata % 4096 == 0


def test_hello_runs_from_its_snapshot(hello: Path) -> None:
    proc = unik(hello, "run", "-t", "hvt", "--count", "2", "--greeting", "hey", "--profile")
    assert proc.stdout.splitlines() == ["hey", "hey"]
    assert RESTORED in proc.stderr and "booting cold" not in proc.stderr, proc.stderr
    # the guest's own argument parser, after the restore: usage and status 2
    bad = unik(hello, "run", "-t", "hvt", "--", "--bogus", check=False)
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr, bad.stderr


def test_no_snapshot_boots_cold(hello: Path) -> None:
    proc = unik(hello, "run", "-t", "hvt", "--count", "1", "--no-snapshot", "--profile")
    assert proc.stdout.splitlines() == ["hello"]
    assert COLD in proc.stderr and RESTORED not in proc.stderr and "booting cold" not in proc.stderr, proc.stderr
    dry = unik(hello, "run", "-t", "hvt", "--dry-run").stdout
    assert "--snapshot " in dry and "hello.snap" in dry
    assert "--snapshot" not in unik(hello, "run", "-t", "hvt", "--dry-run", "--no-snapshot").stdout


def test_a_snapshot_that_does_not_match_boots_cold_with_one_line(hello: Path, tmp_path: Path) -> None:
    snap = hello / "dist" / "hello-hvt" / "hello.snap"
    proc = unik(hello, "run", "-t", "hvt", "--count", "1", "--mem", "200M", "--profile")
    assert proc.stdout.splitlines() == ["hello"] and COLD in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "booting cold" in line]
    assert lines == [f"unik-hvt: the snapshot {snap} was made with --mem 256, this run has --mem 200 "
                     f"(a snapshot restores only into as much memory as it was made with or more: unik configure "
                     f"--mem 200M and unik build make one for it): booting cold"]
    kept = tmp_path / "kept.snap"
    shutil.copy(snap, kept)
    try:
        data = bytearray(snap.read_bytes())
        data[len(data) // 2] ^= 0x40  # one bit of one saved page
        snap.write_bytes(data)
        proc = unik(hello, "run", "-t", "hvt", "--count", "1", "--profile")
        assert proc.stdout.splitlines() == ["hello"] and COLD in proc.stderr
        assert "is damaged (its checksum does not match its contents): booting cold" in proc.stderr
        snap.unlink()
        proc = unik(hello, "run", "-t", "hvt", "--count", "1")
        assert proc.stdout.splitlines() == ["hello"] and f"{snap} does not exist: booting cold" in proc.stderr
    finally:
        shutil.copy(kept, snap)


def test_two_restores_give_different_randomness(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    # random and secrets are imported at build time, before the snapshot: each restore must reseed them
    app = build_app(tmp_path, "rand", head="import random\nimport secrets\n", body="""\
        console.log(f"{os.urandom(16).hex()} {secrets.token_hex(16)} {random.getrandbits(64)}")
        return 5
        """)
    outs = []
    for _ in range(2):
        proc = unik(app, "run", "-t", "hvt", "--profile", check=False)
        assert proc.returncode == 5 and RESTORED in proc.stderr, proc.stderr
        outs.append(proc.stdout.split())
    assert len(outs[0]) == 3
    for first, second in zip(*outs, strict=True):
        assert first != second


def test_an_exception_after_a_restore_exits_1_with_its_traceback(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = build_app(tmp_path, "boom", "raise RuntimeError('boom')\n")
    proc = unik(app, "run", "-t", "hvt", "--profile", check=False)
    assert proc.returncode == 1 and RESTORED in proc.stderr
    assert "RuntimeError: boom" in proc.stderr and "__init__.py" in proc.stderr


def test_kv_keeps_its_fat_disk_across_two_restored_boots(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = _example(tmp_path, "kv")
    disk = tmp_path / "disk.img"
    with disk.open("wb") as f:
        f.truncate(8 << 20)
    first = unik(app, "run", "-t", "hvt", "--block", f"storage={disk}", "--key", "colour", "--value", "green",
                 "--profile")
    second = unik(app, "run", "-t", "hvt", "--block", f"storage={disk}", "--profile")
    assert RESTORED in first.stderr and RESTORED in second.stderr, first.stderr + second.stderr
    assert "boot #2" in second.stdout and "colour = green" in second.stdout, second.stdout
    if shutil.which("fsck.fat"):
        check = subprocess.run(["fsck.fat", "-n", str(disk)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_http_answers_curl_from_a_restore(tmp_path: Path) -> None:
    host, guest = "10.79.8.1", "10.79.8.2"
    needs_tap_guests()
    app = _example(tmp_path, "http", f"--ipv4={guest}/24")
    with tap_guest_namespace("unikhvtsnap", host) as namespace, \
            serving(namespace, app, f"serving on {guest}:8080", "--net", "service=hvt0", "--profile") as server:
        got = curl_in(namespace, f"http://{guest}:8080/")
        assert got.stdout == (ROOT / "examples" / "http" / "htdocs" / "index.html").read_text()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 128 + signal.SIGTERM
        err = server.stderr.read() if server.stderr else ""
        assert RESTORED in err and "booting cold" not in err, err
