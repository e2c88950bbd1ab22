"""Escape attempts: each tiny application is killed and the system call reported by name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from solo5_support import build, make_app, need_sandbox, unik

SIGSYS_STATUS = 128 + 31

#: name: (module-level set-up, the attempt, the system call reported, or the ones it may be)
ATTEMPTS: dict[str, tuple[str, str, str | tuple[str, ...]]] = {
    "passwd": ("", 'open("/etc/passwd").read()', "openat"),
    "socket": ("import socket", "socket.socket(socket.AF_INET, socket.SOCK_STREAM)", "socket"),
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
    "late-import": ("", "import xml.dom.minidom", "newfstatat"),
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


def test_import_time_network_is_a_namespace_of_its_own(tmp_path: Path) -> None:
    need_sandbox()
    header = ('NET = open("/proc/self/net/dev").read().splitlines()[2:]\n'
              'LINKS = sorted(line.split(":")[0].strip() for line in NET)\n')
    app = make_app(tmp_path, "early-net", 'console.log(" ".join(LINKS))\n', header=header)
    build(app)
    assert unik(app, "run").stdout == "lo\n"
