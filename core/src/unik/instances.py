"""Running unikernels: the records behind ``unik ps``, ``logs``, ``stop`` and ``rm``.

Every ``unik run`` (in the foreground or detached with ``-d``) is an *instance* with a
directory ``instances/NAME/`` in the user's state directory (``$XDG_STATE_HOME/unik``,
``~/.local/state/unik``) holding ``instance.json`` and, for a detached run, the
console captured from its first line in ``console.log``.

An instance a unik process does not supervise — a domain ``unik deploy`` handed to
libvirt — names the *engine* that manages it (:class:`Engine`, by ``module:Class``):
whether it runs, its exit status, a stop, a kill and forgetting it are the engine's.

Safe with concurrent commands: a name is taken by creating its directory (``mkdir`` is
atomic, so two runs never get the same one); the record is replaced whole through a
temporary file and a rename, under the instance's lock file for read-modify-write;
``rm`` renames the directory away before deleting it.  Safe with a crashed ``unik``:
the record names the *supervisor* (the process running the target's runner) by its pid,
the pid's start time and the host's boot id, so a record whose process is gone, or
whose pid now belongs to another process, reads as exited, never as running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import UnikError

RECORD = "instance.json"
LOG = "console.log"
LOCK = "lock"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class InstanceError(UnikError):
    """An instance that does not exist, a name that is taken or malformed."""


def state_dir() -> Path:
    """``$XDG_STATE_HOME/unik`` (``~/.local/state/unik``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "unik"


def boot_id() -> str:
    """The host's boot id (a record from an earlier boot names no live process)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``None``: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields follow the last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    state, start = fields[0], int(fields[19])
    return None if state in ("Z", "X") else start


class Engine(Protocol):
    """What manages an instance that no unik process supervises (a libvirt domain), for ``ps``, ``stop``, ``rm``."""

    def running(self, instance: Instance) -> bool:
        """Whether the instance runs."""

    def status(self, instance: Instance) -> int | None:
        """Its application's exit status once it ended (``None``: unknown)."""

    def stop(self, instance: Instance, timeout: float) -> str:
        """Stop it gracefully, killing it after ``timeout`` seconds; what happened, in words."""

    def kill(self, instance: Instance) -> None:
        """Stop it at once."""

    def forget(self, instance: Instance) -> None:
        """Remove what the engine keeps of it (``unik rm``); it is not running."""


def load_engine(path: str) -> Engine:
    """The engine named ``module:Class`` in a record, or an :class:`InstanceError` saying what to install."""
    import importlib

    module, _, name = path.partition(":")
    try:
        engine: Engine = getattr(importlib.import_module(module), name)()
    except (ImportError, AttributeError) as exc:
        raise InstanceError(f"this instance is managed by {path}, which cannot be loaded ({exc}): install the "
                            f"plugin that deployed it") from None
    return engine


@dataclass
class Instance:
    """What ``unik ps`` shows of one run, and what ``stop`` and ``logs`` need."""

    name: str
    app: str
    target: str
    project: str
    artifact: str
    detached: bool
    #: The supervisor: the ``unik`` process running the target's runner.
    pid: int = 0
    pid_start: int = 0
    boot_id: str = ""
    started: float = 0.0
    #: ``starting``, ``running`` or ``exited``, as the supervisor last wrote it.
    state: str = "starting"
    status: int | None = None
    ended: float | None = None
    #: The run's key options as given (``{"publish": ["8080:80"]}``...).
    options: dict[str, list[str]] = field(default_factory=dict)
    #: Guest addresses the configuration gives (``--ipv4``), for ``ps``.
    addresses: list[str] = field(default_factory=list)
    #: What the runner reported: ``qemu_pid``, ``domain``, ``qmp``, ``tender_pid``...
    details: dict[str, Any] = field(default_factory=dict)
    directory: str = ""
    #: The :class:`Engine` managing it (``module:Class``); empty for a run a unik process supervises.
    engine: str = ""

    def manager(self) -> Engine | None:
        """Its engine, if an engine rather than a unik process runs it."""
        return load_engine(self.engine) if self.engine else None

    @property
    def log(self) -> Path | None:
        """The console log (detached runs only)."""
        return Path(self.directory) / LOG if self.detached else None

    def alive(self) -> bool:
        """Whether it runs: its engine says so, or its supervisor runs (same pid and start, this boot)."""
        engine = self.manager()
        if engine is not None:
            return self.state != "exited" and engine.running(self)
        if self.state == "exited" or not self.pid:
            return False
        if self.boot_id and self.boot_id != boot_id():
            return False
        return process_start(self.pid) == self.pid_start

    def shown_state(self) -> str:
        """``running``, ``starting``, ``exited (STATUS)``, or ``exited (unknown)`` for a vanished supervisor."""
        if self.alive():
            return self.state
        engine = self.manager()
        if engine is not None and self.status is None:
            status = engine.status(self)
            return f"exited ({status})" if status is not None else "exited (unknown)"
        if self.state == "exited":
            return f"exited ({self.status})" if self.status is not None else "exited (unknown)"
        return "exited (unknown)"

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data, with the state as ``ps`` shows it."""
        data = asdict(self)
        data["shown_state"] = self.shown_state()
        data["log"] = str(self.log) if self.log else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Instance:
        """A record read back from ``instance.json``."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class Registry:
    """The instances of this user: ``<state dir>/instances/``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or state_dir()) / "instances"

    def path(self, name: str) -> Path:
        """The directory of instance ``name``."""
        return self.root / name

    def reserve(self, wanted: str | None, app: str) -> Path:
        """Take the name ``wanted`` (an error when taken), or the first free one derived from ``app``."""
        self.root.mkdir(parents=True, exist_ok=True)
        if wanted is not None:
            if not _NAME.match(wanted):
                raise InstanceError(f"--name {wanted!r}: use lower-case letters, digits, '.', '_' and '-' "
                                    "(starting with a letter or digit, at most 63)")
            try:
                (self.root / wanted).mkdir()
            except FileExistsError:
                raise InstanceError(f"the name {wanted!r} is taken by another instance: choose another "
                                    f"--name, or remove it with `unik rm {wanted}`") from None
            return self.root / wanted
        base = re.sub(r"[^a-z0-9_.-]", "-", app.lower()).strip("-.") or "app"
        for n in range(1, 1000):
            candidate = base if n == 1 else f"{base}-{n}"
            for _ in range(2):
                try:
                    (self.root / candidate).mkdir()
                    return self.root / candidate
                except FileExistsError:
                    if not self._forget_if_stale(candidate):
                        break
        raise InstanceError(f"no free instance name {base}-N: remove exited ones with `unik rm`")

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[Path]:
        """Hold instance ``name``'s lock file (for read-modify-write of its record)."""
        directory = self.path(name)
        try:
            fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise InstanceError(f"no instance {name!r} (see `unik ps`)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield directory
        finally:
            os.close(fd)

    def write(self, instance: Instance) -> None:
        """Replace ``instance``'s record whole (a vanished directory, after ``rm -f``, is left alone)."""
        directory = self.path(instance.name)
        instance.directory = str(directory)
        tmp = directory / f"{RECORD}.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(asdict(instance), indent=1, sort_keys=True) + "\n")
            os.replace(tmp, directory / RECORD)
        except FileNotFoundError:
            pass

    def update(self, name: str, **changes: Any) -> Instance | None:
        """Change fields of ``name``'s record under its lock; ``None`` when it was removed."""
        try:
            with self.locked(name):
                instance = self.get(name)
                for key, value in changes.items():
                    if key == "details":
                        instance.details.update(value)
                    else:
                        setattr(instance, key, value)
                self.write(instance)
                return instance
        except InstanceError:
            return None

    def get(self, name: str) -> Instance:
        """Instance ``name``, or an :class:`InstanceError` naming what exists."""
        try:
            data = json.loads((self.path(name) / RECORD).read_text())
        except (FileNotFoundError, NotADirectoryError):
            names = [i.name for i in self.all()]
            hint = f" (instances: {', '.join(names)})" if names else " (there are none: start one with unik run -d)"
            raise InstanceError(f"no instance {name!r}{hint}") from None
        except ValueError as exc:
            raise InstanceError(f"the record of instance {name!r} is unreadable ({exc}): "
                                f"remove it with `unik rm -f {name}`") from None
        instance = Instance.from_json(data)
        instance.directory = str(self.path(name))
        return instance

    def all(self) -> list[Instance]:
        """Every instance with a readable record, by start time (stale foreground records are forgotten)."""
        out: list[Instance] = []
        if not self.root.is_dir():
            return out
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not (entry / RECORD).is_file():
                continue
            try:
                instance = self.get(entry.name)
            except InstanceError:
                continue
            if not _stale_foreground(instance):
                out.append(instance)
            else:
                self._forget_if_stale(instance.name)
        return sorted(out, key=lambda i: (i.started, i.name))

    def _forget_if_stale(self, name: str) -> bool:
        """Remove ``name`` if it is a foreground run whose ``unik run`` was killed; whether it was.

        A foreground run is listed only while it runs and removes its record at the end;
        one killed outright (SIGKILL, a crashed terminal) cannot, and its name would stay
        taken by a record nobody asked to keep, unlike a detached run's, kept for ``logs``.
        """
        try:
            with self.locked(name):
                if not _stale_foreground(self.get(name)):
                    return False
                self.remove(name)
                return True
        except InstanceError:
            return False

    def remove(self, name: str) -> None:
        """Delete ``name``'s directory: renamed away first, so no command sees half of it."""
        directory = self.path(name)
        grave = self.root / f".removed-{name}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            directory.rename(grave)
        except FileNotFoundError:
            raise InstanceError(f"no instance {name!r}") from None
        shutil.rmtree(grave, ignore_errors=True)


def _stale_foreground(instance: Instance) -> bool:
    """A foreground run whose supervisor has a pid on record and is gone (not one still starting)."""
    return not instance.detached and bool(instance.pid) and not instance.alive()


def signal_instance(instance: Instance, signum: int) -> bool:
    """Send ``signum`` to the instance's supervisor if it is still the same process."""
    if not instance.alive():
        return False
    try:
        os.kill(instance.pid, signum)
    except ProcessLookupError:
        return False
    return True


def kill_instance(instance: Instance) -> None:
    """SIGKILL the supervisor and what it started (its process group when detached), or have its engine kill it."""
    engine = instance.manager()
    if engine is not None:
        engine.kill(instance)
        return
    if instance.alive():
        try:
            if instance.detached:
                os.killpg(instance.pid, signal.SIGKILL)
            else:
                os.kill(instance.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for key in ("qemu_pid", "tender_pid", "child_pid"):
        pid, start = instance.details.get(key), instance.details.get(f"{key}_start")
        if isinstance(pid, int) and start is not None and process_start(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_gone(instance: Instance, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the supervisor to end; whether it did."""
    deadline = time.monotonic() + timeout
    while instance.alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
