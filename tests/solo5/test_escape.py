"""Escape attempts: each tiny application is killed and the system call reported by name."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from solo5_support import UNIK, build, make_app, need_sandbox, sandboxed_pid, unik

SIGSYS_STATUS = 128 + 31

#: name: (module-level set-up, the attempt, the system call reported, or the ones it may be)
ATTEMPTS: dict[str, tuple[str, str, str | tuple[str, ...]]] = {
    "passwd": ("", 'open("/etc/passwd").read()', "openat"),
    # libc's socket(): below unik.hostsockets' audit-hook refusal of the socket module (issue 16), the filter
    "socket": ("import ctypes\nSOCKET = ctypes.CDLL(None).socket", "SOCKET(2, 1, 0)  # AF_INET, SOCK_STREAM", "socket"),
    "execve": ("import os", 'os.execv("/bin/sh", ["sh", "-c", "echo escaped"])', "execve"),
    "fork": ("import os", "os.fork()", "clone"),
    "ptrace": ("import ctypes\nPTRACE = ctypes.CDLL(None).ptrace", "PTRACE(0, 0, 0, 0)", "ptrace"),
    "stdin-write": ("import os", 'os.write(0, b"x")', "write"),
    "mprotect-exec": (
        "import ctypes\nimport mmap\nPAGE = mmap.mmap(-1, mmap.PAGESIZE)\n"
        "ADDR = ctypes.addressof(ctypes.c_char.from_buffer(PAGE))\nMPROTECT = ctypes.CDLL(None).mprotect",
        "MPROTECT(ctypes.c_void_p(ADDR), mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC)", "mprotect",
    ),
    "mmap-exec": ("import mmap", "mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)",
                  "mmap"),
    # the directory's stat is answered ENOENT (the root is empty); listing it again is the escape
    "late-import": ("", "import xml.dom.minidom", "openat"),
    "sigsys-handler": ("import signal", "signal.signal(signal.SIGSYS, signal.SIG_IGN)", "rt_sigaction"),
    # randomness comes from the random device (Fortuna); the host's CSPRNG is out of reach
    "urandom": ("import os", "os.urandom(16)", "getrandom"),
    # a thread never starts, and the report names the attempt (not glibc's first step)
    "thread": ("import threading", "threading.Thread(target=print).start()", "clone"),
    "to-thread": ("import asyncio", "await asyncio.to_thread(print)", "clone"),
    "stdout-dup": ("import os", "os.dup(1)", "fcntl"),  # F_DUPFD_CLOEXEC: only F_GETFL on the self-pipe
    "kill-tender": ("import os\nimport signal", "os.kill(0, signal.SIGKILL)", "kill"),
}


@pytest.mark.parametrize("name", sorted(ATTEMPTS))
def test_escape_is_killed_and_named(tmp_path: Path, name: str) -> None:
    need_sandbox()
    setup, attempt, syscall = ATTEMPTS[name]
    body = f'console.log("before")\n{attempt}\nconsole.log("escaped")\n'
    app = make_app(tmp_path, f"escape-{name}", body, header=setup)
    build(app)
    proc = unik(app, "run", check=False)
    assert proc.returncode == SIGSYS_STATUS, proc.stderr
    assert proc.stdout.splitlines() == ["before"]
    names = (syscall,) if isinstance(syscall, str) else syscall
    assert any(f"system call {name} (" in proc.stderr for name in names), proc.stderr
    assert "escaped" not in proc.stdout + proc.stderr


#: name: (module-level code of the application, run when it is imported, and the call named)
IMPORT_ATTEMPTS: dict[str, tuple[str, str]] = {
    "fork": ("import os\nos.fork()", "clone"),
    "socket": ("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)", "socket"),
    "write-host-file": ('open("/tmp/unik-spt-escaped", "w").write("x")', "openat"),
    "execve": ('import os\nos.execv("/bin/sh", ["sh", "-c", "echo escaped"])', "execve"),
    "unlink": ('import os\nos.unlink("/tmp/unik-spt-never-there")', "unlink"),
}


@pytest.mark.parametrize("name", sorted(IMPORT_ATTEMPTS))
def test_import_time_escape_is_killed_and_named(tmp_path: Path, name: str) -> None:
    need_sandbox()
    attempt, syscall = IMPORT_ATTEMPTS[name]
    # unik configure imports the application on the host too: attempt only under the tender.
    header = 'import os\nif "UNIK_SPT_DEVICES" in os.environ:\n' + textwrap.indent(attempt, "    ")
    app = make_app(tmp_path, f"early-{name}", 'console.log("escaped")\n', header=header)
    build(app)
    proc = unik(app, "run", check=False)
    assert proc.returncode == SIGSYS_STATUS, proc.stderr
    assert f"killed by the sandbox: system call {syscall} (" in proc.stderr, proc.stderr
    assert "escaped" not in proc.stdout + proc.stderr
    assert not Path("/tmp/unik-spt-escaped").exists()


#: Module-level code that, under the tender, lists every file it can see, checks whether the
#: root and the artifact are read-only, then waits a moment for the test to look at it.
LOOK_AROUND = """\
import os
import time
SEEN, READ_ONLY = [], []
if "UNIK_SPT_DEVICES" in os.environ:
    for top, dirs, files in os.walk("/"):
        SEEN += [os.path.join(top, f) for f in files]
    READ_ONLY = [bool(os.statvfs(p).f_flag & os.ST_RDONLY) for p in ("/", os.path.dirname(__file__))]
    time.sleep(3)
"""


def test_import_time_code_sees_only_the_artifacts_read_only_root(tmp_path: Path) -> None:
    """Issue 19: an empty root with only the artifact's read-only tree before any of its code runs."""
    need_sandbox()
    app = make_app(tmp_path, "early-root", 'console.log(repr((READ_ONLY, SEEN)))\n', header=LOOK_AROUND)
    build(app)
    art = app / "dist" / "early-root-spt" / "app"
    proc = subprocess.Popen([UNIK, "run"], cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = None
        for _ in range(100):  # the application imports, then sleeps 3 s at import time
            try:
                pid = sandboxed_pid(str(app))
                if os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
                    break
            except (AssertionError, OSError):
                pass
            time.sleep(0.05)
        assert pid is not None
        # From the host, while its modules import: namespaces of its own, its network only lo.
        for ns in ("mnt", "net", "ipc", "uts", "pid"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        links = [line.split(":")[0].strip() for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]]
        assert links == ["lo"]
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    read_only, seen = ast.literal_eval(out.strip())
    assert read_only == [True, True]
    # Every file it saw is the artifact's, the interpreter's standard library, or one of the
    # shared libraries and loader files listed at build time: nothing else of the host's.
    stdlib = subprocess.run([sys.executable, "-I", "-S", "-c", "import sys; print(*sys.path[1:], sep='\\n')"],
                            capture_output=True, text=True, check=True).stdout.split()
    listed = json.loads((art / "sandbox-root.json").read_text())["read_only"]
    allowed_trees = [str(art.resolve()), *stdlib]
    allowed_files = {os.path.realpath(p) for p in listed} | {"/etc/ld.so.cache"}
    strays = [p for p in seen if os.path.realpath(p) not in allowed_files
              and not any(p.startswith(t.rstrip("/") + "/") for t in allowed_trees)]
    assert strays == [], strays[:20]
    assert any(p.endswith("/early_root/__init__.py") for p in seen)
    assert not any(p.startswith(("/etc/passwd", "/proc/", "/home/", str(app / "src"))) for p in seen)
