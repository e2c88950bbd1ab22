"""examples/http in a VM on QEMU's user network, configured, built and run by an unprivileged user.

No TAP, no namespace, no root: the host reaches the guest through the port published
on 127.0.0.1.  As root the test drops to ``nobody`` (setpriv) in a private copy of the
example it owns; as any other user it runs as that user.  The VM runs detached
(`unik run -d`) and is listed, read, stopped by its power button and removed by that user.
"""

from __future__ import annotations

import json
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
from vm_support import RUN_TIMEOUT_S, UNIK

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
    """The whole life of a VM without root: run -d, ps, logs, curl, a graceful stop, rm."""
    command, root, env, uid = unprivileged
    assert uid != 0
    env = {**env, "XDG_STATE_HOME": str(root.parent / "state")}

    def unik(*args: str) -> str:
        done = subprocess.run([*command, *args], cwd=root, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
        assert done.returncode == 0, f"unik {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    unik("configure", "-t", "virtio", "--net", "service=user")
    unik("build")
    port = _free_port()
    rule = f"127.0.0.1:{port}:8080"
    assert unik("run", "-d", "--accel", "tcg", "--publish", rule) == "http\n"
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        log = ""
        while "serving on" not in log:  # bounded by RUN_TIMEOUT_S
            assert time.monotonic() < deadline, "the guest never served:\n" + log
            time.sleep(0.5)
            log = unik("logs", "http")
        # slirp's DHCP server gave unik's stack its address; the runner said what it published
        assert "serving on 10.0.2.15:8080\n" in log, log
        assert f"published: 127.0.0.1:{port} -> 8080/tcp" in log, log
        record = next(i for i in json.loads(unik("ps", "--json")) if i["name"] == "http")
        assert record["target"] == "virtio" and record["state"] == "running", record
        assert _uid(record["pid"]) == uid and _uid(record["details"]["qemu_pid"]) == uid, record  # no root
        line = unik("ps").splitlines()[1].split()
        assert line[:3] == ["http", "virtio", "running"] and line[-1] == rule, line
        page = _curl(f"http://127.0.0.1:{port}/")
        assert "<h1>Hello from unik</h1>" in page.stdout, page.stderr + log
        head = _curl("-I", f"http://127.0.0.1:{port}/index.html")
        assert head.stdout.startswith("HTTP/1.1 200"), head.stdout + head.stderr
        missing = _curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/nothing-here")
        assert missing.stdout == "404", missing.stdout + missing.stderr
        big = root.parent / "big.download"
        got = _curl("-o", str(big), "-w", "%{http_code} %{size_download}", f"http://127.0.0.1:{port}/big.bin")
        assert got.stdout == f"200 {BIG}", got.stdout + got.stderr
        assert big.read_bytes() == (root / "htdocs" / "big.bin").read_bytes()
        unik("stop", "--timeout", "120", "http")  # the power button: the application stops itself
        record = next(i for i in json.loads(unik("ps", "--json")) if i["name"] == "http")
        assert record["shown_state"] == "exited (143)", record
        assert "unik-init: the power button: stopping" in unik("logs", "http")
        unik("rm", "http")
        assert "http" not in unik("ps")
    finally:
        subprocess.run([*command, "rm", "-f", "http"], cwd=root, env=env, capture_output=True, timeout=RUN_TIMEOUT_S)


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
