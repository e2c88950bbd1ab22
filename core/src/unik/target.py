"""Targets: what turns a plan into an artifact (emit) and starts it (run).

A target plugin registers a :class:`Target` subclass through
``unik_register_targets`` and its device providers through
``unik_register_providers`` (with ``targets = frozenset({"<name>"})``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import NotConfigured, RunError
from .inventory import Content
from .keys import Key, KeyValues
from .plan import Plan
from .progress import Progress

if TYPE_CHECKING:
    from .plugins import PluginManager

ARTIFACT_FILE = "artifact.json"


@dataclass(frozen=True)
class Artifact:
    """What an emitter produced: a directory under ``dist/`` and its description."""

    target: str
    directory: Path
    entry: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The main file of the artifact (``hello.pyz``, ``bzImage``...)."""
        return self.directory / self.entry

    def save(self) -> None:
        """Write ``artifact.json`` into the artifact directory."""
        data = {"target": self.target, "entry": self.entry, "manifest": self.manifest}
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        (self.directory / ARTIFACT_FILE).write_text(text)

    @classmethod
    def load(cls, directory: Path) -> Artifact:
        """Read an artifact directory written by :meth:`save`."""
        path = directory / ARTIFACT_FILE
        if not path.exists():
            raise NotConfigured(f"no artifact in {directory}: run `unik build` first")
        data = json.loads(path.read_text())
        return cls(data["target"], directory, data["entry"], data.get("manifest", {}))


@dataclass(frozen=True)
class Check:
    """One finding of ``unik doctor``: what was checked, whether it holds, and what to do if not.

    .. versionadded:: 0.1
    """

    name: str
    ok: bool
    detail: str = ""
    #: What to do when the check fails (a command, a package to install).
    fix: str = ""
    #: A failed optional check is a warning: the target still works, with less.
    required: bool = True


@dataclass
class BuildContext:
    """Where an emitter reads from and writes to."""

    root: Path
    build_dir: Path
    dist_dir: Path
    progress: Progress
    plugins: PluginManager
    #: Pins of ``unik.lock`` to move on instead of following (``{"kernel"}``: ``--update-kernel``).
    update: frozenset[str] = frozenset()

    def artifact_dir(self, plan: Plan) -> Path:
        """``dist/<name>-<target>/``, created empty."""
        out = self.dist_dir / f"{plan.app.name}-{plan.target}"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        return out


@dataclass
class RunContext:
    """What a runner gets besides the artifact."""

    root: Path
    progress: Progress
    extra_args: Sequence[str] = ()
    #: Values of the target's ``run_keys`` (``--mem 256M``...).
    options: KeyValues = field(default_factory=lambda: KeyValues(()))
    #: ``unik run --dry-run``: print the command (:meth:`show_command`) and start nothing.
    dry_run: bool = False
    #: Seconds a runner waits for a graceful stop before it kills (``None``: its own default,
    #: for Ctrl-C in the foreground; a detached run leaves the kill to ``unik stop --timeout``).
    stop_grace: float | None = None
    #: Told what the runner started once it is up (see :meth:`started`).
    on_started: Callable[[Mapping[str, object]], None] | None = None
    #: The instance's name (``unik ps``; the application's for ``--dry-run`` without ``--name``):
    #: what is the same at every start of an instance but differs between instances of one
    #: image derives from it, such as the MAC addresses of its NICs.
    instance: str = ""

    def started(self, **details: object) -> None:
        """Report that the artifact is running, with what ``unik ps`` and ``unik stop`` use.

        Runners call it once the process, VM or domain exists: ``qemu_pid``, ``domain``,
        ``tender_pid``, ``child_pid`` (each pid with ``<key>_start``, its start time from
        :func:`unik.instances.process_start`, so a reused pid is never killed), ``accel``.
        ``unik run -d`` returns to the shell at this point.

        .. versionadded:: 0.1
        """
        if self.on_started is not None:
            self.on_started(details)

    def show_command(self, command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Print ``command`` shell-quoted (``unik run --dry-run``), with ``env`` assignments first; 0."""
        prefix = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
        print(" ".join([*prefix, shlex.join(command)]), file=sys.stdout, flush=True)
        return 0


def check_disk_image(device: str, path: str, *, writable: bool) -> None:
    """Refuse a disk image that is missing, not a file, or that this user cannot open (:class:`RunError`)."""
    full = os.path.abspath(os.path.expanduser(path))
    where = f"block device {device!r}: {path}"
    if not os.path.exists(full):
        looked = f" (looked in {os.path.dirname(full)})" if full != path else ""
        raise RunError(f"{where} does not exist{looked}: create it first (e.g. truncate -s 64M {path}), "
                       f"or give another with --block {device}=FILE")
    if os.path.isdir(full):
        raise RunError(f"{where} is a directory: give a disk image file with --block {device}=FILE")
    if not os.access(full, os.R_OK | (os.W_OK if writable else 0)):
        how = "read and write" if writable else "read"
        raise RunError(f"{where}: permission denied: this user cannot {how} it; change its owner or mode "
                       f"(chown/chmod), or run as a user who can")


def check_disk_images(plan: Plan, provider: str, files: Mapping[str, str]) -> None:
    """Each device of ``plan`` from ``provider`` has a disk image this user can open.

    The image is ``files``' (by device: ``--block``), else its device table's ``file``.
    """
    for node in plan.nodes:
        if node.provider != provider:
            continue
        path = files.get(node.name) or node.options.get("file")
        if not path:
            raise RunError(f"block device {node.name!r} needs a disk image: unik run --block {node.name}=FILE "
                           f"(or file = \"...\" in [tool.unik.devices.{node.name}])")
        check_disk_image(node.name, str(path), writable=not node.options.get("read_only"))


def given_bindings(name: str, keys: KeyValues, ctx: RunContext) -> dict[str, str]:
    """The bindings of the per-device key ``name``: configured, overridden by the runner's options."""
    return {**(keys.bindings(name) if name in keys.keys else {}), **ctx.options.bindings(name)}


class Target:
    """Base class of targets."""

    #: The target's name, used with ``-t``.
    PLUGIN_NAME: ClassVar[str]
    #: One line for ``unik targets``.
    description: ClassVar[str] = ""
    #: Keys the target declares (``net``, ``block``...).
    keys: ClassVar[Sequence[Key]] = ()
    #: Keys the runner itself reads (not passed to the application), e.g. ``mem``.
    run_keys: ClassVar[Sequence[Key]] = ()
    #: Whether the runner calls ``ctx.started(...)`` once the artifact is up; when not, a
    #: detached run counts as started when its runner is called.
    reports_started: ClassVar[bool] = False
    #: Whether the artifact may use the host's sockets.  ``False`` (a VM, a sandbox): there
    #: is no host network inside, and :mod:`unik.hostsockets` makes the socket module's
    #: calls fail at once, naming the event-loop method to use instead.
    host_network: ClassVar[bool] = True
    #: Run-time modules the generated ``main.py`` imports first, each with what it is for
    #: (a VM target's snapshot agent: readiness to the host, the restore's renewals).
    startup: ClassVar[tuple[tuple[str, str], ...]] = ()

    def emit(self, plan: Plan, ctx: BuildContext) -> Artifact:
        """Produce the artifact for ``plan``; slow work reports to ``ctx.progress``."""
        raise NotImplementedError(f"target {self.PLUGIN_NAME} cannot build artifacts")

    def run(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> int:
        """Start ``artifact`` with ``keys`` and return the application's exit status.

        A runner calls ``ctx.started(...)`` once the artifact runs; with ``ctx.dry_run`` it
        prints its command with ``ctx.show_command`` instead of starting it.  SIGTERM (and
        SIGINT) to the runner asks for a graceful stop: the application's devices
        disconnect (a VM's guest is sent its power button or shutdown request); a second
        signal, or a stop that takes too long, kills it.
        """
        raise NotImplementedError(f"target {self.PLUGIN_NAME} cannot run artifacts")

    def check_plan(self, plan: Plan) -> None:
        """Refuse a plan this target cannot build, at configure time, before anything is written.

        ``unik configure`` calls it on the composed plan: what ``emit`` would refuse and
        can be known now (a dependency the target cannot load) raises
        :class:`~unik.errors.ConfigError` or :class:`~unik.errors.BuildError` here, with the
        fix, so no configuration is saved for a build that would fail.  It must not do the
        build's work (install, download, compile); ``emit`` keeps its own checks as the
        backstop.  The default checks nothing.

        .. versionadded:: 0.1
        """

    def preflight(self, plan: Plan, keys: KeyValues, ctx: RunContext) -> None:
        """Check what running ``plan`` with ``keys`` needs from this host, before anything is built.

        ``unik run`` calls it before building or booting: a missing disk image, an
        address the host does not have, raise :class:`RunError` (one sentence, with the
        fix) here rather than after a build and a boot.  The default checks nothing.

        .. versionadded:: 0.1
        """

    def inspect(self, artifact: Artifact) -> tuple[list[Content], dict[str, str]]:
        """What ``artifact`` holds (``unik inspect``), and facts worth a line (kernel, Python).

        The default lists the files of the artifact directory.

        .. versionadded:: 0.1
        """
        contents = [Content(p.relative_to(artifact.directory).as_posix(), p.stat().st_size, "artifact")
                    for p in sorted(artifact.directory.rglob("*")) if p.is_file()]
        return contents, {}

    def doctor(self) -> Sequence[Check]:
        """Check this host for what building and running the target's artifacts need.

        ``unik doctor -t TARGET`` prints the checks; targets that need nothing special
        return none (the default).

        .. versionadded:: 0.1
        """
        return ()
