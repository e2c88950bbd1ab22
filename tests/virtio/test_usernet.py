"""examples/http in a VM on QEMU's user network, configured, built and run by an unprivileged user.

No TAP, no namespace, no root: the host reaches the guest through the port published
on 127.0.0.1.  As root the test drops to ``nobody`` (setpriv) in a private copy of the
example it owns; as any other user it runs as that user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from example_support import copy_example
from host_tools import needs, require
from virtio_support import RUN_TIMEOUT_S, UNIK

pytestmark = pytest.mark.slow

#: The unprivileged user the test becomes when it runs as root.
USER = "nobody"
CURL_ATTEMPTS = 10
#: A file streamed from the guest's store through unik's stack and slirp.
BIG = 4 << 20


def _site_packages() -> str:
    return next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))


def _unik_as(uid: int, gid: int) -> list[str] | None:
    """A command prefix running `unik` as ``uid``, or ``None`` when that user cannot run this Python.

    The venv's interpreter may live where the user cannot read (a pyenv under /root); then
    the system's Python of the same version runs the venv's packages (``site.addsitedir``).
    The build copies the interpreter into the image, so the user must be able to read it.
    """
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    site = f"import site, sys; site.addsitedir({_site_packages()!r}); "
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, system):
        check = "import unik_virtio; open(getattr(sys, '_base_executable', sys.executable), 'rb').close()"
        probe = subprocess.run([*drop, python, "-c", site + check], capture_output=True)
        if probe.returncode == 0:
            return [*drop, python, "-c", site + "from unik.cli import main; sys.exit(main())"]
    return None


@pytest.fixture
def unprivileged(tools: None) -> Iterator[tuple[list[str], Path, dict[str, str], int]]:
    """The `unik` command as an unprivileged user, a copy of examples/http it owns, its environment, its uid."""
    if os.geteuid() == 0:
        require("setpriv")
    home = Path(tempfile.mkdtemp(prefix="unik-usernet-"))
    try:
        root = copy_example("http", home)
        (root / "htdocs" / "big.bin").write_bytes(os.urandom(BIG))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "XDG_CACHE_HOME": str(home / "cache")}
        if os.geteuid() != 0:
            yield [UNIK], root, env, os.geteuid()
            return
        import pwd

        user = pwd.getpwnam(USER)
        command = _unik_as(user.pw_uid, user.pw_gid)
        if command is None:
            pytest.fail(f"user {USER} can run neither {sys.executable} nor the system's Python of the same "
                        f"version: make one readable to it")
        for path in (home, *home.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)
        home.chmod(0o755)
        yield command, root, env, user.pw_uid
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _uid(pid: int) -> int:
    """The real user id of process ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl, retried a bounded number of times while the connection is refused or reset."""
    for _ in range(CURL_ATTEMPTS):
        proc = subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, text=True)
        if proc.returncode not in (7, 52, 56):  # refused, empty reply, reset
            return proc
        time.sleep(1.0)
    return proc


@needs("curl")
def test_examples_http_serves_an_unprivileged_user_through_a_published_port(
    unprivileged: tuple[list[str], Path, dict[str, str], int],
) -> None:
    command, root, env, uid = unprivileged
    assert uid != 0
    for step in (["configure", "-t", "virtio", "--net", "service=user"], ["build"]):
        done = subprocess.run([*command, *step], cwd=root, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
        assert done.returncode == 0, done.stdout + done.stderr
    port = _free_port()
    guest = subprocess.Popen([*command, "run", "--accel", "tcg", "--publish", f"127.0.0.1:{port}:8080"],
                             cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    console: list[str] = []
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        assert guest.stdout is not None
        while not console or not console[-1].startswith("serving on"):
            line = guest.stdout.readline()
            assert line and time.monotonic() < deadline, "the guest never served:\n" + "".join(console)
            console.append(line)
        children = Path(f"/proc/{guest.pid}/task/{guest.pid}/children").read_text().split()
        assert children, "QEMU is not running"
        for pid in (guest.pid, *map(int, children)):  # unik, and QEMU, ran as the user
            assert _uid(pid) == uid, Path(f"/proc/{pid}/cmdline").read_bytes()
        # slirp's DHCP server gave unik's stack its address; the runner said what it published
        assert console[-1] == "serving on 10.0.2.15:8080\n", console
        assert any(f"published: 127.0.0.1:{port} -> 8080/tcp" in line for line in console), console
        page = _curl(f"http://127.0.0.1:{port}/")
        assert "<h1>Hello from unik</h1>" in page.stdout, page.stderr + "".join(console)
        head = _curl("-I", f"http://127.0.0.1:{port}/index.html")
        assert head.stdout.startswith("HTTP/1.1 200"), head.stdout + head.stderr
        missing = _curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/nothing-here")
        assert missing.stdout == "404", missing.stdout + missing.stderr
        big = root.parent / "big.download"
        got = _curl("-o", str(big), "-w", "%{http_code} %{size_download}", f"http://127.0.0.1:{port}/big.bin")
        assert got.stdout == f"200 {BIG}", got.stdout + got.stderr
        assert big.read_bytes() == (root / "htdocs" / "big.bin").read_bytes()
    finally:
        guest.terminate()
        try:
            guest.wait(timeout=30)
        except subprocess.TimeoutExpired:
            guest.kill()
            guest.wait()


def test_a_published_host_port_in_use_stops_the_run_before_booting(http_app: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        proc = subprocess.run([UNIK, "run", "--accel", "tcg", "--net", "service=user", "--publish", f"{port}:8080"],
                              cwd=http_app, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode != 0
    assert f"--publish {port}:8080/tcp: tcp port {port} is already in use on this host" in proc.stderr
    assert "Traceback" not in proc.stderr and "booting" not in proc.stderr
    assert time.monotonic() - start < RUN_TIMEOUT_S
    proc = subprocess.run([UNIK, "run", "--accel", "tcg", "--net", "service=user", "--publish", "18080:80"],
                          cwd=http_app, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode != 0 and "the application listens on --port 8080, not on 80" in proc.stderr
    port = _free_port()
    proc = subprocess.run([UNIK, "run", "--dry-run", "--accel", "tcg", "--net", "service=user", "--publish",
                           f"127.0.0.1:{port}:8080"], cwd=http_app, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    assert f"user,id=net-service,hostfwd=tcp:127.0.0.1:{port}-:8080" in proc.stdout
