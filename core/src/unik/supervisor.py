"""Running an artifact as a recorded instance: in the foreground, or detached (``unik run -d``).

The *supervisor* is the process that runs the target's runner: ``unik run`` itself in
the foreground, a forked child in its own session for a detached run.  It records the
instance (:mod:`unik.instances`) before starting, notes what the runner reports once
the artifact is up, and writes the exit status at the end.  A detached supervisor's
standard output and error — the console and unik's own messages — go to the
instance's ``console.log`` from the first line; the parent returns once the runner
reports the artifact started, or prints the log and the status if it ended first.
A stop is SIGTERM to the supervisor, which its runner turns into a graceful stop.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import UnikError
from .instances import LOG, Instance, InstanceError, Registry, boot_id, process_start
from .progress import Progress

#: A runner: called with the instance's name and the callback its target reports the start to.
Runner = Callable[[str, Callable[[Mapping[str, object]], None]], int]


@dataclass
class Launch:
    """What a run is, for its record."""

    app: str
    target: str
    project: str
    artifact: str
    options: dict[str, list[str]]
    addresses: list[str]


def _record(registry: Registry, launch: Launch, name: str | None, detached: bool) -> Instance:
    directory = registry.reserve(name, launch.app)
    instance = Instance(name=directory.name, app=launch.app, target=launch.target, project=launch.project,
                        artifact=launch.artifact, detached=detached, started=time.time(), boot_id=boot_id(),
                        options=launch.options, addresses=launch.addresses)
    registry.write(instance)
    return instance


def run_attached(registry: Registry, launch: Launch, name: str | None, runner: Runner) -> int:
    """Run in this process, listed by ``unik ps`` while it runs; the record goes at the end."""
    instance = _record(registry, launch, name, detached=False)
    pid = os.getpid()
    registry.update(instance.name, pid=pid, pid_start=process_start(pid) or 0)

    def started(details: Mapping[str, object]) -> None:
        registry.update(instance.name, state="running", details=dict(details))

    try:
        return runner(instance.name, started)
    finally:
        try:
            registry.remove(instance.name)
        except InstanceError:  # removed meanwhile (unik rm -f)
            pass


def run_detached(registry: Registry, launch: Launch, name: str | None, runner: Runner, progress: Progress) -> int:
    """Fork a supervisor in its own session; return once the artifact runs (0) or has ended (its status)."""
    instance = _record(registry, launch, name, detached=True)
    log = registry.path(instance.name) / LOG
    log.touch()
    sys.stdout.flush()
    sys.stderr.flush()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its work is seen through the record and the log
        os.close(ready_r)
        _supervise(registry, instance.name, log, runner, ready_w)
    os.close(ready_w)
    registry.update(instance.name, pid=pid, pid_start=process_start(pid) or 0)
    with os.fdopen(ready_r, "rb") as ready:
        up = ready.read(1) == b"1"
    if up:
        print(instance.name, flush=True)
        progress.info(f"{instance.name} is running: unik logs -f {instance.name}; unik stop {instance.name}")
        return 0
    _, wstatus = os.waitpid(pid, 0)
    status = os.waitstatus_to_exitcode(wstatus)
    sys.stderr.write(log.read_text(errors="replace"))
    progress.warn(f"{instance.name} ended before it was up (status {status}); its record stays for "
                  f"`unik logs {instance.name}` until `unik rm {instance.name}`")
    return status or 1


def _supervise(registry: Registry, name: str, log: os.PathLike[str], runner: Runner,
               ready: int) -> None:  # pragma: no cover - runs in the forked child
    status = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)

        def started(details: Mapping[str, object]) -> None:
            registry.update(name, state="running", details=dict(details))
            try:
                os.write(ready, b"1")
                os.close(ready)
            except OSError:  # reported already
                pass

        status = runner(name, started)
    except UnikError as exc:
        print(f"unik: error: {exc}", file=sys.stderr)
    except BaseException:  # noqa: BLE001 - whatever happens, the record gets its end
        traceback.print_exc()
    finally:
        registry.update(name, state="exited", status=status, ended=time.time())
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status if 0 <= status <= 255 else 1)
