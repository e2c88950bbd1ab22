"""A private libvirtd for the deploy tests, in a network namespace the test made.

Debian's daemon keeps its sockets, state and configuration under fixed paths
(/run/libvirt, /var/lib/libvirt, /etc/libvirt...): the daemon is started in a mount
namespace of its own where each of those is a directory of the test's, so it cannot
meet another daemon or leave anything behind, and in the test's network namespace, so
QEMU opens the namespace's TAP.  virtlogd (the console logs) is started first, as
libvirtd needs it.  QEMU runs as root there (``user = "root"`` in the private
qemu.conf): the test's files under /tmp are not readable by Debian's libvirt-qemu user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from served_support import stop

#: What the daemon sees at the fixed paths: the test's directories, bound over them.
PRIVATE = {"run": "/run/libvirt", "lib": "/var/lib/libvirt", "log": "/var/log/libvirt",
           "cache": "/var/cache/libvirt", "etc": "/etc/libvirt"}
SCRIPT = """set -e
D=$1
for pair in {pairs}; do
    mkdir -p "${{pair#*=}}"
    mount --bind "$D/${{pair%%=*}}" "${{pair#*=}}"
done
virtlogd -d -p "$D/virtlogd.pid"
exec libvirtd -p "$D/libvirtd.pid"
"""
START_TIMEOUT_S = 30.0


@dataclass
class Libvirtd:
    """A running private daemon: its URI, its directory and the namespace it runs in."""

    uri: str
    directory: Path
    netns: str


def _stop_pid(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


@contextlib.contextmanager
def private_libvirtd(netns: str) -> Iterator[Libvirtd]:
    """Start libvirtd (and virtlogd) in ``netns`` with private paths; stop them and every domain after."""
    # A short path: the daemon's socket path must fit in a sockaddr_un (108 bytes).
    directory = Path(tempfile.mkdtemp(prefix="unik-lv-", dir="/tmp"))
    for name in PRIVATE:
        (directory / name).mkdir()
    shutil.copytree("/etc/libvirt", directory / "etc", dirs_exist_ok=True)
    with open(directory / "etc" / "qemu.conf", "a") as conf:
        conf.write('\nuser = "root"\ngroup = "root"\nsecurity_driver = "none"\n')
    pairs = " ".join(f"{name}={path}" for name, path in PRIVATE.items())
    log = open(directory / "libvirtd.out", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
                               "sh", "-c", SCRIPT.format(pairs=pairs), "sh", str(directory)],
                              stdout=log, stderr=subprocess.STDOUT)
    socket = directory / "run" / "libvirt-sock"
    uri = f"qemu+unix:///system?socket={socket}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not socket.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"libvirtd did not start: {(directory / 'libvirtd.out').read_text()}")
            time.sleep(0.1)
        yield Libvirtd(uri, directory, netns)
    finally:
        _destroy_all(uri)
        stop(daemon, 30)
        _stop_pid(directory / "virtlogd.pid")
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def _destroy_all(uri: str) -> None:
    """Destroy and undefine every domain the daemon has (their QEMUs outlive the daemon otherwise)."""
    try:
        import libvirt  # type: ignore[import-untyped]

        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        conn = libvirt.open(uri)
    except Exception:  # noqa: BLE001 - nothing to clean when there is no daemon or binding
        return
    for dom in conn.listAllDomains():
        with contextlib.suppress(libvirt.libvirtError):
            if dom.isActive():
                dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()
    conn.close()
