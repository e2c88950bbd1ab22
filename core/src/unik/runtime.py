"""What the generated ``main.py`` uses at run time: device lifecycle, keys, exit status."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, NoReturn, TypeVar

from . import lifecycle
from .errors import BadKey, DeviceUnavailable, UnikError, UserError, did_you_mean
from .keys import ArgvSyntax, KeyValues

T = TypeVar("T")

# Paths are strings here: pathlib (with urllib.parse and ipaddress behind it) would add
# a twentieth to a unikernel's start-up under emulation.
_root: str | None = None


#: The application's files as the user knows them: artifact-relative top-level name -> host path.
_sources: dict[str, str] = {}
_sources_root: str | None = None


def name_sources(main_file: str, sources: dict[str, str]) -> None:
    """Make tracebacks name the user's files, not their copies in the artifact.

    ``sources`` maps a top-level name beside ``main_file`` (the application's package,
    ``main.py``) to its path in the project that built the artifact, relative to the
    project's directory: ``UNIK_PROJECT_ROOT`` (which ``unik run`` sets where the artifact
    can read it) makes them absolute.  Paths are mapped when
    a traceback is printed, not when the code is compiled: the lines shown are read
    from the copy that ran (so they are what ran, and they exist inside a VM, where the
    host's paths do not), while the names are the ones the user edits.  Uncaught
    exceptions outside :func:`supervise` (an import error) are printed the same way.
    """
    global _sources_root
    _sources_root = os.path.dirname(os.path.realpath(main_file))
    project = os.environ.get("UNIK_PROJECT_ROOT", "")
    _sources.update({name: os.path.join(project, path) for name, path in sources.items()})
    sys.excepthook = _excepthook


def _excepthook(et: type[BaseException], ev: BaseException, tb: TracebackType | None) -> None:
    print_exception(ev)


def _host_name(filename: str) -> str:
    if _sources_root is None or not filename.startswith(_sources_root + os.sep):
        return filename
    rel = filename[len(_sources_root) + 1:]
    top, sep, rest = rel.partition(os.sep)
    host = _sources.get(top)
    if host is None:
        return filename
    return os.path.join(host, rest) if sep else host


def print_exception(exc: BaseException, file: Any = None) -> None:
    """Print ``exc``'s traceback (causes, contexts and groups too) with the user's file names."""
    te = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    todo = [te]
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        while len(one.stack) > 1 and one.stack[0].filename == __file__:  # supervise() awaiting the application
            one.stack = traceback.StackSummary.from_list(one.stack[1:])
        for frame in one.stack:
            frame.line  # noqa: B018 - read the line from the copy that ran, before renaming the file
            frame.filename = _host_name(frame.filename)
        todo += [t for t in (one.__cause__, one.__context__) if t is not None]
        todo += getattr(one, "exceptions", None) or []
    print("".join(te.format()), end="", file=file or sys.stderr)


def set_root(path: str | os.PathLike[str]) -> None:
    """Set the artifact root (the directory of the generated ``main.py``)."""
    global _root
    _root = os.path.realpath(path)


def artifact_path(relative: str) -> str:
    """A path inside the artifact, e.g. ``assets/htdocs``."""
    return os.path.join(_root or os.environ.get("UNIK_ROOT", "."), relative)


class Devices:
    """Connects devices in order and disconnects them in reverse, whatever happens.

    A stop (SIGTERM, a VM's power button) cancels the application; leaving this
    context then disconnects every device, the last connected first: a filesystem
    flushes before the disk under it closes.
    """

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self.connected: dict[str, Any] = {}

    async def __aenter__(self) -> Devices:
        await self._stack.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return bool(await self._stack.__aexit__(et, ev, tb))

    async def connect(self, name: str, implementation: Any, /, **kwargs: Any) -> Any:
        """``await implementation.connect(**kwargs)``, remembered for disconnection."""
        try:
            device = await implementation.connect(**kwargs)
        except OSError as exc:
            # The host refused a file, a device, an address: the user's to fix, not a bug.
            what = f": {exc.filename}" if exc.filename else ""
            raise DeviceUnavailable(f"device {name!r} ({implementation.__name__}): "
                                    f"{os.strerror(exc.errno) if exc.errno else exc}{what}") from exc
        except Exception as exc:
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"while connecting device {name!r} ({implementation.__name__})")
            raise
        self._stack.push_async_callback(device.disconnect)
        self.connected[name] = device
        return device

    def started(self) -> None:
        """Every device is connected: announce :data:`unik.lifecycle.STARTED`."""
        lifecycle.announce(lifecycle.STARTED)


def parse_args(keys: KeyValues, argv: Sequence[str], prog: str,
               devices: Mapping[str, Sequence[str]] | None = None, *,
               syntax: ArgvSyntax | Sequence[ArgvSyntax] | None = None) -> KeyValues:
    """Apply command-line overrides (``--net service=tap1 --port 9090``) to ``keys``.

    ``devices`` names, per per-device key, the devices that read it: a binding to any
    other device (``--block stroage=disk.img``) is a :class:`BadKey`, not ignored.
    ``syntax`` rewrites a plugin's own dialect first (solo5's ``--net:service=tap1``); several
    apply in order.
    """
    if not argv:
        return keys
    import argparse  # only when there are arguments: a unikernel usually boots with none

    parser = argparse.ArgumentParser(
        prog=prog, description="Run this unik application; options override configured keys."
    )
    for key in sorted(keys.keys.values(), key=lambda k: k.name):
        if key.internal:  # the target's own machinery sets these, not the command line
            continue
        default = keys.raw(key.name)
        helptext = key.help + (f" (configured: {default})" if default is not None else "")
        if key.per_device and not key.metavar:
            helptext += "; DEVICE=VALUE sets it for one device"
        flag: dict[str, Any] = {"nargs": "?", "const": "true"} if key.type == "bool" else {}
        parser.add_argument(key.option, dest=key.name, action="append", help=helptext,
                            metavar=key.metavar or key.type.upper(), **flag)
    for rewrite in () if syntax is None else (syntax,) if callable(syntax) else syntax:
        argv = rewrite(argv, keys.keys)
    _refuse_foreign_bindings(argv, keys)
    ns = parser.parse_args(argv)
    given = {name: texts for name, texts in vars(ns).items() if texts}
    keys = keys.with_args(given)
    for name, takers in (devices or {}).items():
        for device in sorted(set(keys.bindings(name)) - set(takers)) if name in given else ():
            raise keys.error(name, f"{device}=...: this application has no device {device!r}"
                             f"{did_you_mean(device, takers)} (devices that take it: {', '.join(takers)})")
    return keys


def _refuse_foreign_bindings(argv: Sequence[str], keys: KeyValues) -> None:
    """Name unik's spelling for ``--net:service=tap0``, a target's dialect this artifact does not carry.

    A dialect is its plugin's code (solo5's, for spt and hvt), carried only by artifacts
    of its distribution (:attr:`unik.plan.Plan.argv_syntax`): a unix ``.pyz`` reads unik's
    ``--net service=tap0``, where argparse alone would say "unrecognized arguments".
    ``unik run`` reads both, through the installed plugins' hooks.
    """
    for arg in argv:
        if arg == "--":
            return
        option, colon, binding = arg.partition(":")
        key = keys.keys.get(option[2:].replace("-", "_")) if arg.startswith("--") and colon else None
        if key is not None and key.per_device and not key.internal and "=" in binding:
            raise BadKey(f"{arg}: this artifact reads {option} {binding} (DEVICE=VALUE after the option; "
                         f"`unik run` also reads a target's own {option}:DEVICE=VALUE spelling)")


def main(
    entry: Callable[[KeyValues], Awaitable[object]],
    keys: KeyValues,
    main_file: str,
    argv: Sequence[str] | None = None,
    devices: Mapping[str, Sequence[str]] | None = None,
    event_loop: Callable[[], asyncio.AbstractEventLoop] | None = None,
    syntax: Sequence[ArgvSyntax] = (),
) -> NoReturn:
    """Run the generated ``main`` coroutine and exit with the application's status.

    The status is the integer the application returns (``None`` is 0); an uncaught
    exception prints its traceback and exits 1; SIGINT and SIGTERM announce
    :data:`unik.lifecycle.SHUTDOWN_REQUESTED`, cancel the application, disconnect its
    devices in reverse connect order and exit 128 + the signal number (a second signal,
    a second or more later, exits at once).  ``devices`` is as for :func:`parse_args`;
    ``event_loop`` makes the loop it runs on (``None``: asyncio's own), as
    ``asyncio.run(loop_factory=...)``; ``syntax``, the plugins' dialects the command line
    also reads (:attr:`unik.plan.Plan.argv_syntax`).
    """
    set_root(os.path.dirname(os.path.abspath(main_file)))
    prog = os.environ.get("UNIK_PROG", os.path.basename(sys.argv[0]))
    try:
        keys = parse_args(keys, sys.argv[1:] if argv is None else argv, prog, devices, syntax=syntax)
    except UnikError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(supervise(entry, keys), event_loop))


def run(coro: Coroutine[Any, Any, T], event_loop: Callable[[], asyncio.AbstractEventLoop] | None = None) -> T:
    """``asyncio.run(coro)``, on a loop made by ``event_loop`` when given (any Python from 3.10)."""
    if event_loop is None:
        return asyncio.run(coro)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=event_loop) as runner:
            return runner.run(coro)
    loop = event_loop()  # pragma: no cover - Python 3.10: asyncio.run without its loop_factory
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def refuse_host_sockets(target: str) -> None:
    """Make the host's sockets fail at once, naming the loop method to use (:mod:`unik.hostsockets`)."""
    from .hostsockets import refuse

    refuse(target)


async def supervise(entry: Callable[[KeyValues], Awaitable[object]], keys: KeyValues) -> int:
    """Run ``entry(keys)`` in the running loop and return the exit status :func:`main` uses.

    Targets that must prepare the loop themselves (the spt sandbox creates it before
    its filter goes on) call this instead of :func:`main`.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(entry(keys))
    received: list[tuple[int, float]] = []

    def stop(signum: int) -> None:
        # The first signal cancels the application, which disconnects its devices. The
        # same signal often arrives twice at once (from the terminal and forwarded by
        # `unik run`): repeats within a second are ignored, a later one exits at once.
        now = loop.time()
        if received:
            if now - received[0][1] > 1.0:
                os._exit(128 + signum)
            return
        received.append((signum, now))
        lifecycle.announce(lifecycle.SHUTDOWN_REQUESTED)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    try:
        result = await task
    except asyncio.CancelledError:
        return 128 + received[0][0] if received else 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UserError as exc:
        # A missing file, a bad address, a port in use: one sentence says what to do.
        if os.environ.get("UNIK_TRACEBACK", "") not in ("", "0"):
            print_exception(exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except UnikError as exc:
        print_exception(exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the application's failure becomes its status
        print_exception(exc)
        return 1
    finally:
        sys.stdout.flush()
        if received:
            # Closing the loop restores the default dispositions: a repeat arriving
            # then must not kill the process on its way out.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    if result is None or result is True:
        return 0
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return 1 if result is False else 0
