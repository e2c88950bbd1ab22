"""``unik ps``, ``unik logs``, ``unik stop`` and ``unik rm``: the commands over :mod:`unik.instances`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .instances import Instance

# unik.instances (the records, the engines) is imported by the commands: every other
# command adds these parsers and needs none of it.

#: ``unik stop``'s default wait for a graceful stop before the kill, in seconds.
STOP_TIMEOUT_S = 10.0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the instance commands to the ``unik`` command's subparsers."""
    p = sub.add_parser("ps", help="list running unikernels (started by unik run)",
                       description="List the instances unik run started: name, target, state, pid or domain, "
                       "uptime, addresses, published ports. Exited detached ones stay listed until unik rm.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("logs", help="print the console of a detached instance",
                       description="Print the console of an instance started with unik run -d, from its first line.")
    p.add_argument("name")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the instance ends")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stop", help="stop an instance gracefully, then kill it after a timeout",
                       description="Ask the instance to stop (SIGTERM to a process; the power button of a VM; "
                       "xl shutdown for a Xen guest): the application's devices disconnect in reverse order "
                       "(a FAT disk is flushed). After --timeout seconds it is killed.")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S,
                   help=f"seconds to wait before killing (default: {STOP_TIMEOUT_S:g})")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("rm", help="remove an exited instance's record and log",
                       description="Remove instances that have exited; -f stops running ones first (killing them).")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("-f", "--force", action="store_true", help="kill a running instance and remove it")
    p.set_defaults(func=cmd_rm)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


def _process(instance: Instance) -> str:
    if "domain" in instance.details:
        return f"domain {instance.details['domain']}"
    return str(instance.pid) if instance.pid else "-"


def row(instance: Instance, now: float) -> dict[str, str]:
    """What ``unik ps`` prints of one instance."""
    alive = instance.alive()
    ended = instance.ended if instance.ended is not None else now
    ports = instance.options.get("publish", [])
    return {
        "NAME": instance.name,
        "TARGET": instance.target,
        "STATE": instance.shown_state(),
        "PID/DOMAIN": _process(instance),
        "UPTIME": _duration(now - instance.started) if alive else f"exited {_duration(now - ended)} ago"
        if instance.ended is not None else "-",
        "ADDRESSES": ",".join(instance.addresses) or "-",
        "PORTS": ",".join(ports) or "-",
    }


def cmd_ps(ns: argparse.Namespace) -> int:
    """``unik ps``."""
    from .instances import Registry

    instances = Registry().all()
    if ns.json:
        print(json.dumps([i.to_json() for i in instances], indent=2))
        return 0
    if not instances:
        print("no instances (start one with unik run -d)")
        return 0
    now = time.time()
    rows = [row(i, now) for i in instances]
    widths = {col: max(len(col), *(len(r[col]) for r in rows)) for col in rows[0]}
    print("  ".join(col.ljust(w) for col, w in widths.items()).rstrip())
    for r in rows:
        print("  ".join(r[col].ljust(w) for col, w in widths.items()).rstrip())
    return 0


def cmd_logs(ns: argparse.Namespace) -> int:
    """``unik logs [-f] NAME``."""
    from .instances import InstanceError, Registry

    instance = Registry().get(ns.name)
    log = instance.log
    if log is None:
        raise InstanceError(f"{ns.name} runs in the foreground: its console is the terminal of its unik run")
    if not log.exists():
        where = f" (its engine keeps it: {instance.details['uri']})" if "uri" in instance.details else ""
        raise InstanceError(f"{ns.name} has no console log here{where}")
    out = sys.stdout.buffer
    with open(log, "rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                out.write(chunk)
                out.flush()
                continue
            if not ns.follow or not instance.alive():
                break
            time.sleep(0.1)
    return 0


def stop(instance: Instance, timeout: float) -> str:
    """Stop ``instance`` gracefully, killing it after ``timeout`` seconds; what happened, in words."""
    from .instances import Registry, kill_instance, signal_instance, wait_gone

    engine = instance.manager()
    if engine is not None:
        if not instance.alive():
            return f"{instance.name} is not running ({instance.shown_state()})"
        said = engine.stop(instance, timeout)
        Registry().update(instance.name, state="exited", status=engine.status(instance), ended=time.time())
        return said
    if not signal_instance(instance, signal.SIGTERM):
        running = [i.name for i in Registry().all() if i.app == instance.app and i.alive()]
        hint = f"; running instances of {instance.app}: {', '.join(running)}" if running else ""
        return f"{instance.name} is not running ({instance.shown_state()}){hint}"
    if wait_gone(instance, timeout):
        return f"{instance.name} stopped"
    kill_instance(instance)
    wait_gone(instance, 5.0)
    Registry().update(instance.name, state="exited", status=128 + signal.SIGKILL, ended=time.time())
    return f"{instance.name} did not stop within {timeout:g} s: killed"


def cmd_stop(ns: argparse.Namespace) -> int:
    """``unik stop NAME...``."""
    from .instances import InstanceError, Registry

    registry = Registry()
    failed = 0
    for name in ns.names:
        try:
            ns.progress.info(stop(registry.get(name), ns.timeout))
        except InstanceError as exc:
            print(f"unik: error: {exc}", file=sys.stderr)
            failed = 1
    return failed


def cmd_rm(ns: argparse.Namespace) -> int:
    """``unik rm [-f] NAME...``."""
    from .instances import InstanceError, Registry, kill_instance, wait_gone

    registry = Registry()
    failed = 0
    for name in ns.names:
        try:
            instance = registry.get(name)
            if instance.alive():
                if not ns.force:
                    raise InstanceError(f"{name} is running: stop it first (unik stop {name}), "
                                        f"or kill and remove it with unik rm -f {name}")
                kill_instance(instance)
                wait_gone(instance, 5.0)
            engine = instance.manager()
            if engine is not None:
                engine.forget(instance)
            registry.remove(name)
            ns.progress.info(f"removed {name}")
        except InstanceError as exc:
            print(f"unik: error: {exc}", file=sys.stderr)
            failed = 1
    return failed

