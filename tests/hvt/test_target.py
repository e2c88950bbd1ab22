"""The hvt target end to end: CPython as a unikernel under unik-hvt (configure, build, run, doctor)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from hvt_support import MONITOR, ROOT, build_app, needs_build_tools, needs_kvm, run, unik


def test_hello_runs_under_hvt(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = tmp_path / "hello"
    shutil.copytree(ROOT / "examples" / "hello", app, ignore=shutil.ignore_patterns("_build", "dist"))
    unik(app, "-q", "configure", "-t", "hvt")
    unik(app, "-q", "build")
    out = app / "dist" / "hello-hvt"
    assert (out / "hello.hvt").read_bytes()[:4] == b"\x7fELF"
    assert json.loads((out / "manifest.json").read_text()) == {"type": "solo5.manifest", "version": 1, "devices": []}
    proc = unik(app, "run", "-t", "hvt")
    assert proc.stdout.splitlines() == ["hello"] * 4
    proc = unik(app, "run", "-t", "hvt", "--count", "2", "--greeting", "bonjour", "--mem", "128M")
    assert proc.stdout.splitlines() == ["bonjour", "bonjour"]
    # where a boot's time goes: the runtime's calls, most of them without a trap; CPython's imports
    proc = unik(app, "run", "-t", "hvt", "--count", "1", "--profile", "--profile-imports")
    assert proc.stdout == "hello\n"
    assert re.search(r"\| +\d+ \| unik\.runtime\n", proc.stderr), proc.stderr
    found = re.search(r"(\d+) system calls in .* (\d+) of them direct", proc.stderr)
    assert found and int(found.group(2)) > int(found.group(1)) // 2, proc.stderr
    # the monitor seals itself with seccomp once the VM exists
    monitor = subprocess.Popen([str(MONITOR), str(out / "hello.hvt"), "--count", "2"], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert monitor.stdout is not None and monitor.stdout.readline() == "hello\n"
        status = Path(f"/proc/{monitor.pid}/status").read_text()
        assert "\nSeccomp:\t2\n" in status and "\nNoNewPrivs:\t1\n" in status
    finally:
        assert monitor.wait(timeout=60) == 0


def test_status_host_isolation_and_refused_calls(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = build_app(tmp_path, "probe", """\
        try:
            os.fork()
        except OSError as exc:
            console.log(f"fork: {exc.strerror}")
        for path in ("/etc/passwd", "/proc/self/status", "/app/main.py", "/dev/hvt/net/service"):
            console.log(f"{path}: {os.path.exists(path)}")
        import _socket
        for family, family_name in ((_socket.AF_INET, "AF_INET"), (_socket.AF_UNIX, "AF_UNIX")):
            try:
                _socket.socket(family, _socket.SOCK_STREAM)
            except Exception as exc:  # unik's refusal; beneath it the runtime answers ENOSYS (test_hvt_runtime)
                why = exc.strerror if type(exc) is OSError else type(exc).__name__
                console.log(f"socket {family_name}: {why}")
        try:
            os.open("/etc/hosts", os.O_WRONLY | os.O_CREAT)
        except OSError as exc:
            console.log(f"create: {exc.strerror}")
        return 3
        """)
    proc = unik(app, "run", "-t", "hvt", check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines() == ["fork: Function not implemented", "/etc/passwd: False",
                                        "/proc/self/status: False", "/app/main.py: True",
                                        "/dev/hvt/net/service: False", "socket AF_INET: HostNetworkUnavailable",
                                        "socket AF_UNIX: Function not implemented", "create: Read-only file system"]
    assert "system call clone (56) is not supported by the hvt runtime: ENOSYS" in proc.stderr  # glibc forks with clone


def test_an_exception_exits_1_with_its_traceback(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = build_app(tmp_path, "boom", "raise RuntimeError('boom')\n")
    proc = unik(app, "run", "-t", "hvt", check=False)
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr and "__init__.py" in proc.stderr


def test_doctor_runs_the_probe_guest(tmp_path: Path) -> None:
    needs_kvm()
    proc = unik(tmp_path, "doctor", "-t", "hvt", check=False)
    assert "the probe guest ran natively" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0


def test_kv_keeps_its_fat_disk_across_boots(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = tmp_path / "kv"
    shutil.copytree(ROOT / "examples" / "kv", app, ignore=shutil.ignore_patterns("_build", "dist"))
    unik(app, "-q", "configure", "-t", "hvt")
    unik(app, "-q", "build")
    manifest = json.loads((app / "dist" / "kv-hvt" / "manifest.json").read_text())
    assert manifest["devices"] == [{"name": "storage", "type": "BLOCK_BASIC", "file": "disk.img"}]
    disk = tmp_path / "other.img"
    with disk.open("wb") as f:
        f.truncate(8 << 20)
    unik(app, "run", "-t", "hvt", "--block", f"storage={disk}", "--key", "colour", "--value", "blue")
    out = unik(app, "run", "-t", "hvt", "--block", f"storage={disk}").stdout
    assert "boot #2" in out and "colour = blue" in out, out
    if shutil.which("fsck.fat"):
        check = subprocess.run(["fsck.fat", "-n", str(disk)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    proc = unik(app, "run", "-t", "hvt", "--block", f"storage={tmp_path / 'absent.img'}", check=False)
    assert proc.returncode != 0 and "does not exist" in proc.stderr


def test_show_policy() -> None:
    out = run("--show-policy").stdout
    names = [line.strip() for line in out.splitlines()[1:] if line.startswith("  ")]
    assert names == ["ioctl", "write", "read", "pread64", "pwrite64", "fdatasync", "ppoll", "clock_gettime",
                     "exit_group", "rt_sigreturn"]
