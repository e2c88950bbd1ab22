"""VM snapshots on the host: save a booted, ready guest once, start every later instance from it.

A snapshot is QEMU's migration stream written to a file (``migrate "exec:cat > FILE"``)
and read back by a new QEMU process (``-incoming "exec:cat FILE"``).  The stream was
chosen over QEMU's internal snapshots (``savevm``): those need a qcow2 disk to live in,
while unik's disks are raw files the user owns, and a stream restores into any number of
QEMU processes side by side.  Disks are not in the stream: a restored guest reads them
as they are now (see :mod:`unik_vmguest.snapshot`).

``<image>/snapshot/`` holds ``state.bin`` (the stream) and ``snapshot.json`` (a
:class:`SnapshotManifest`), which binds the state to what it can only be restored into:
the image (the SHA-256 of its kernel and initramfs), the kernel's version, QEMU's
version, the machine, accelerator, CPU model and memory, QEMU's device set and the
application's arguments (baked into the saved memory).  :func:`mismatch` names what
differs; the runner then boots cold and says so.

The guest and the host talk on COM2 (an ``isa-serial`` on a socket this side listens
on): the guest writes ``unik-ready`` once the application serves and blocks; saving is
``stop``, ``migrate`` and ``quit`` over QMP.  Restoring, the host waits until QMP says
the VM runs, then writes ``resume GENERATION TIME_NS SEED OLD=NEW...`` (the host's time,
32 bytes of ``os.urandom``, the instance's own MAC address for each NIC on a TAP) and
reads ``unik-resumed``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from unik.cache import cache_dir, write_atomic
from unik.errors import RunError
from unik.progress import Progress

from . import qmp

DIRECTORY = "snapshot"
STATE_FILE = "state.bin"
MANIFEST_FILE = "snapshot.json"
FORMAT = 1
#: The word on the kernel command line of a boot to be snapshotted (the init passes it on).
CMDLINE_FLAG = "unik_snapshot=1"
CONTROL_SOCKET = "control.sock"
READY = b"unik-ready"
RESUMED = b"unik-resumed"
#: Seconds a restored guest has to say it runs again (under TCG on a loaded host, generous).
RESUME_TIMEOUT_S = 60.0
#: Seconds saving may take (stop, the stream written, quit).
SAVE_TIMEOUT_S = 120.0


def control_args(path: Path) -> list[str]:
    """COM2 on the Unix socket ``path`` (this side listens; QEMU connects as it starts)."""
    return ["-chardev", f"socket,id=unik-ctl,path={path}", "-device", "isa-serial,chardev=unik-ctl"]


def generation_id_args(machine: str) -> list[str]:
    """QEMU's VM generation ID device (a new GUID in every QEMU process), where the machine has ACPI tables for it.

    The guest kernel's ``vmgenid`` driver reseeds its CSPRNG when the GUID changes, before
    any program of the guest runs again.
    """
    return ["-device", "vmgenid"] if machine == "q35" else []


def spare_user_networks(count: int) -> list[str]:
    """``count`` user networks attached to nothing, to take the state of those the snapshot had.

    QEMU's stream carries the state of each user network (slirp) it was saved with, and
    refuses to load into a process with fewer; a snapshot saved on ``--net DEVICE=user``
    and restored on a TAP gets one of these per missing network.
    """
    return [a for i in range(max(0, count)) for a in ("-netdev", f"user,id=unik-snapshot-spare{i},restrict=on")]


@dataclass(frozen=True)
class Binding:
    """What a snapshot can only be restored into: each field must be equal."""

    image: str
    kernel: str
    qemu: str
    machine: str
    accel: str
    mem: str
    devices: tuple[str, ...]
    args: tuple[str, ...]
    disks: tuple[tuple[str, int], ...] = ()

    #: How each field is named to the user.
    NAMES: ClassVar[dict[str, str]] = {
        "image": "the image (kernel and initramfs)", "kernel": "the kernel", "qemu": "QEMU's version",
        "machine": "the machine (--machine)", "accel": "the accelerator (--accel)", "mem": "the memory (--mem)",
        "devices": "the device set", "args": "the application's arguments and keys", "disks": "the disks' sizes"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Binding:
        """From ``snapshot.json``'s ``binding`` (unknown fields refused)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r} in the snapshot's binding")
        return cls(**{**data, "devices": tuple(data["devices"]), "args": tuple(data["args"]),
                      "disks": tuple((str(n), int(s)) for n, s in data.get("disks", ()))})


@dataclass(frozen=True)
class SnapshotManifest:
    """``snapshot.json``: the binding, the state file and what saving measured."""

    binding: Binding
    #: The network devices' MAC addresses in the saved memory, by device name.
    macs: dict[str, str] = field(default_factory=dict)
    state: str = STATE_FILE
    state_bytes: int = 0
    #: How many NICs were on QEMU's user network when it was saved (their slirp state is in the stream).
    user_networks: int = 0
    #: Seconds from starting QEMU to the application's readiness, and to save it.
    ready_s: float = 0.0
    save_s: float = 0.0
    created: float = 0.0
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``snapshot.json``."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SnapshotManifest:
        """From ``snapshot.json`` (a ``ValueError`` for another format or an unknown field)."""
        if data.get("format") != FORMAT:
            raise ValueError(f"snapshot format {data.get('format')!r}, not {FORMAT}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        return cls(**{**data, "binding": Binding.from_json(data["binding"])})


def snapshot_dir(image: Path) -> Path:
    """Where the snapshot of the image in directory ``image`` lives."""
    return image / DIRECTORY


def load(image: Path) -> SnapshotManifest | None:
    """The image's snapshot manifest (``None``: none, or its state file is gone)."""
    path = snapshot_dir(image) / MANIFEST_FILE
    try:
        manifest = SnapshotManifest.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path} cannot be read ({exc}): delete {path.parent} or save a snapshot again "
                       f"(unik run --save-snapshot)") from None
    if not (path.parent / manifest.state).is_file():
        return None
    return manifest


def mismatch(saved: Binding, now: Binding) -> list[str]:
    """What differs between a snapshot's binding and this run's, in words (empty: it can be restored)."""
    out = []
    for f in fields(Binding):
        a, b = getattr(saved, f.name), getattr(now, f.name)
        if a != b:
            shown = "" if f.name in ("devices", "image") else f" ({_short(a)} in the snapshot, {_short(b)} now)"
            out.append(f"{Binding.NAMES[f.name]}{shown}")
    return out


def _short(value: object) -> str:
    text = " ".join(value) if isinstance(value, tuple) and all(isinstance(v, str) for v in value) else str(value)
    return text if len(text) < 60 else text[:57] + "..."


def file_digest(path: Path) -> str:
    """The SHA-256 of ``path``, remembered per path, size, inode and change time (restores stay quick)."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_ino}\0{st.st_ctime_ns}".encode()).hexdigest()
    remembered = cache_dir() / "virtio" / f"file-{key[:24]}.sha256"
    try:
        return remembered.read_text()
    except OSError:
        pass
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    write_atomic(remembered, digest)
    return digest


def image_digest(kernel: Path, initramfs: Path) -> str:
    """One digest of the image's kernel and initramfs."""
    return hashlib.sha256(f"{file_digest(kernel)}\0{file_digest(initramfs)}".encode()).hexdigest()


def qemu_version(qemu: str) -> str:
    """QEMU's version (``7.2.22``), remembered per executable and modification time."""
    st = os.stat(qemu)
    key = hashlib.sha256(f"{qemu}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    remembered = cache_dir() / "virtio" / f"qemu-version-{key}"
    try:
        return remembered.read_text()
    except OSError:
        pass
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False).stdout
    words = out.split()
    version = words[3] if len(words) > 3 and words[:3] == ["QEMU", "emulator", "version"] else out.strip()
    write_atomic(remembered, version)
    return version


class Channel:
    """The host's side of COM2: a listening Unix socket, then QEMU's connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._conn: socket.socket | None = None
        self._buffer = b""

    def accept(self, timeout: float) -> None:
        """Take QEMU's connection (it connects as it starts)."""
        self._listener.settimeout(timeout)
        try:
            self._conn, _ = self._listener.accept()
        except OSError as exc:
            raise RunError(f"QEMU did not connect to the snapshot channel {self.path} within {timeout:g} s "
                           f"({exc})") from None

    def read_line(self, timeout: float, stop: Callable[[], bool] = lambda: False) -> bytes:
        """The guest's next line (without the newline), or a :class:`RunError` after ``timeout`` seconds."""
        assert self._conn is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or stop():
                raise RunError(f"the guest said nothing on the snapshot channel within {timeout:g} s")
            self._conn.settimeout(min(left, 0.2))
            try:
                chunk = self._conn.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                raise RunError("QEMU closed the snapshot channel (the guest stopped)")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.strip()

    def write(self, data: bytes) -> None:
        """Send ``data`` to the guest."""
        assert self._conn is not None
        self._conn.sendall(data)

    def close(self) -> None:
        """Close both sockets."""
        if self._conn is not None:
            self._conn.close()
        self._listener.close()


def _wait_for_qmp(path: Path, timeout: float) -> qmp.Connection:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return qmp.Connection(path)
        except RunError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def resume_when_loaded(conn: qmp.Connection, timeout: float = RESUME_TIMEOUT_S) -> None:
    """Wait until QEMU has read the stream, then run the VM (``cont``: it was saved stopped)."""
    deadline = time.monotonic() + timeout
    while True:
        status = conn.execute("query-status").get("status")
        if status == "running":
            return
        if status != "inmigrate":
            migration = conn.execute("query-migrate").get("status")
            if migration == "completed":
                conn.execute("cont")
                continue
            if migration == "failed":
                raise RunError("QEMU could not load the snapshot (see its message above): save it again "
                               "(unik run --save-snapshot) or boot cold (--no-snapshot)")
        if time.monotonic() > deadline:
            raise RunError(f"QEMU did not load the snapshot within {timeout:g} s")
        time.sleep(0.002)


def save(conn: qmp.Connection, state: Path, timeout: float = SAVE_TIMEOUT_S) -> None:
    """Stop the VM and write its migration stream to ``state`` (through a temporary file)."""
    tmp = state.with_name(f"{state.name}.{os.getpid()}.tmp")
    conn.execute("stop")
    conn.execute("migrate", uri=f"exec:cat > {shlex.quote(str(tmp))}")
    deadline = time.monotonic() + timeout
    while True:
        info = conn.execute("query-migrate")
        status = info.get("status")
        if status == "completed":
            break
        if status in ("failed", "cancelled"):
            tmp.unlink(missing_ok=True)
            raise RunError(f"QEMU could not save the VM: {info.get('error-desc', status)}")
        if time.monotonic() > deadline:
            conn.execute("migrate_cancel")
            tmp.unlink(missing_ok=True)
            raise RunError(f"saving the VM took more than {timeout:g} s; it was cancelled")
        time.sleep(0.02)
    os.replace(tmp, state)


@dataclass
class Session:
    """One boot that saves a snapshot (``mode="save"``) or one restore from it (``mode="restore"``).

    :meth:`prepare` gives QEMU's extra arguments; :meth:`started` runs the exchange with the
    guest in a thread; after QEMU ended, :attr:`error` says what went wrong, if anything.
    """

    mode: str
    image: Path
    binding: Binding
    progress: Progress
    #: The network devices' MACs of this instance (saving: the snapshot's; restoring: the new ones).
    macs: dict[str, str] = field(default_factory=dict)
    #: restore: the snapshot's manifest.
    manifest: SnapshotManifest | None = None
    #: Network devices on QEMU's user network.  Restoring, they keep the snapshot's MAC — a
    #: link private to this QEMU process (whose DHCP server, restored with the VM, remembers
    #: that MAC's lease: another MAC would be given another address than the one published).
    private_links: frozenset[str] = frozenset()
    ready_timeout: float = 300.0
    #: What went wrong in the exchange (the runner reports it), and what it did.
    error: str | None = None
    saved: SnapshotManifest | None = None
    #: restore: seconds from starting QEMU to the guest's ``unik-resumed``; the new MACs.
    resumed_s: float | None = None
    new_macs: dict[str, str] = field(default_factory=dict)
    _channel: Channel | None = None
    _qmp: Path | None = None
    _thread: threading.Thread | None = None
    _start: float = 0.0
    _kill: Callable[[], None] | None = None

    def prepare(self, control: Path, qmp_socket: Path) -> list[str]:
        """Listen on COM2's socket; QEMU's arguments for COM2 (and, restoring, the stream)."""
        self._channel = Channel(control / CONTROL_SOCKET)
        self._qmp = qmp_socket
        args = control_args(self._channel.path)
        if self.mode == "restore":
            assert self.manifest is not None
            state = snapshot_dir(self.image) / self.manifest.state
            args += spare_user_networks(self.manifest.user_networks - len(self.private_links))
            args += ["-incoming", f"exec:cat {shlex.quote(str(state))}"]
        return args

    def started(self, pid: int, kill: Callable[[], None]) -> None:
        """QEMU runs (``pid``): start the exchange; ``kill`` ends QEMU when it fails."""
        self._start = time.monotonic()
        self._kill = kill
        target = self._save if self.mode == "save" else self._restore
        self._thread = threading.Thread(target=self._guarded, args=(target,), name=f"unik-snapshot-{self.mode}",
                                        daemon=True)
        self._thread.start()

    def _guarded(self, target: Callable[[], None]) -> None:
        try:
            target()
        except (RunError, OSError) as exc:
            self.error = str(exc)
            if self._kill is not None:
                self._kill()

    def _save(self) -> None:
        assert self._channel is not None and self._qmp is not None
        self._channel.accept(10.0)
        try:
            line = self._channel.read_line(self.ready_timeout)
        except RunError as exc:
            raise RunError(f"{exc}: the application never served. A snapshot is saved when it opens its first "
                           f"listening socket (unik.lifecycle.READY, which unik-lib-tcpip's start_server and "
                           f"create_server announce; an application that serves otherwise announces it), within "
                           f"--boot-timeout seconds (default 300 here)") from None
        if line != READY:
            raise RunError(f"the guest said {line!r} on the snapshot channel, not {READY.decode()!r}")
        ready = time.monotonic() - self._start
        self.progress.info(f"the application is ready after {ready:.2f} s: saving the VM")
        directory = snapshot_dir(self.image)
        directory.mkdir(exist_ok=True)
        (directory / MANIFEST_FILE).unlink(missing_ok=True)  # no manifest names a half-written state
        conn = _wait_for_qmp(self._qmp, 5.0)
        try:
            began = time.monotonic()
            save(conn, directory / STATE_FILE)
            took = time.monotonic() - began
            self.saved = SnapshotManifest(self.binding, dict(self.macs), STATE_FILE,
                                          (directory / STATE_FILE).stat().st_size, len(self.private_links),
                                          round(ready, 3), round(took, 3), time.time())
            write_atomic(directory / MANIFEST_FILE, json.dumps(self.saved.to_json(), indent=2, sort_keys=True) + "\n")
            conn.execute("quit")
        finally:
            conn.close()
            self._channel.close()

    def _restore(self) -> None:
        assert self._channel is not None and self._qmp is not None and self.manifest is not None
        self._channel.accept(10.0)
        conn = _wait_for_qmp(self._qmp, 10.0)
        try:
            resume_when_loaded(conn)
        finally:
            conn.close()
        self.new_macs = {device: self.macs[device] for device in self.manifest.macs
                         if device in self.macs and device not in self.private_links
                         and self.macs[device] != self.manifest.macs[device]}
        pairs = " ".join(f"{self.manifest.macs[d]}={mac}" for d, mac in self.new_macs.items())
        self._channel.write(f"resume 1 {time.time_ns()} {os.urandom(32).hex()} {pairs}\n".encode())
        line = self._channel.read_line(RESUME_TIMEOUT_S)
        if not line.startswith(RESUMED):
            raise RunError(f"the restored guest said {line!r}, not {RESUMED.decode()!r}")
        self.resumed_s = time.monotonic() - self._start
        macs = ", ".join(f"{d} {m}" for d, m in self.new_macs.items())
        self.progress.info(f"restored from the snapshot: the application runs again after {self.resumed_s:.2f} s"
                           + (f" (MAC {macs})" if macs else ""))
        self._channel.close()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the exchange's thread (after QEMU ended)."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._channel is not None:
            self._channel.close()


def session_binding(*, kernel: Path, initramfs: Path, kernel_version: str, qemu: str, machine: str, accel: str,
                    mem: str, devices: Sequence[str], drives: Sequence[str], args: Sequence[str],
                    disks: Sequence[tuple[str, int]]) -> Binding:
    """The :class:`Binding` of a run.

    Drives are bound without their files (another file of the same size restores), NICs
    without their MACs (each instance has its own).
    """
    drive_shapes = [_without(d, "file=") for d in drives]
    return Binding(image_digest(kernel, initramfs), kernel_version, qemu_version(qemu), machine, accel, mem,
                   (*(_without(d, "mac=") for d in devices), *drive_shapes), tuple(args), tuple(disks))


def _without(value: str, prefix: str) -> str:
    """A QEMU option value without its ``prefix...`` property (a file, a MAC: they may differ per instance)."""
    return ",".join(p for p in value.split(",") if not p.startswith(prefix))
