"""Inside the artifact: import everything, seal the process, then run the application.

The tender execs ``python -I -S app/__spt__.py ARGS``, which calls :func:`boot`.  In
order: check the handed devices against the manifest; import the generated ``main.py``
(every implementation and the application) and :data:`PRELOAD`; keep the sources of
the artifact's modules for tracebacks (nothing can be read later); parse the keys and
bind the handed descriptors to the devices' keys (:func:`unik_solo5.devices.key_args`);
create the event loop (its epoll and self-pipe descriptors) and start the runtime's
supervisor, which installs its SIGINT/SIGTERM handlers; the generated ``main.py``
connects the devices (a TLS device reads its certificate and key, OpenSSL its
configuration, a Fortuna seeds itself from every entropy source) and announces
:data:`unik.lifecycle.STARTED`, on which :func:`unik_solo5._sandbox.enter` closes
every other descriptor, enters the namespaces with an empty root and installs the
filter compiled from :mod:`unik_solo5.policy` for exactly these descriptors
(``BEFORE_SEAL`` and ``SEALED`` are announced around it: libraries subscribe, load what
they load lazily and give up what needs system calls — unik-lib-entropy its sources
that do; this module imports no library).  Only then does the
application's ``start`` run.  The process leaves with ``os._exit`` once the
devices are disconnected: no loop closing, no interpreter finalization.
"""

from __future__ import annotations

import _thread
import asyncio
import importlib
import importlib.util
import json
import linecache
import os
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from unik import lifecycle, runtime
from unik.errors import UnikError
from unik.keys import KeyValues

from . import _sandbox, kv
from . import root as sandbox_root
from .abi import MEM_ENV, OUT_OF_MEMORY
from .devices import handed, key_args
from .policy import FdSets, compile_first_stage, compile_policy
from .syntax import solo5_syntax

#: Standard-library modules that CPython or asyncio import lazily after start-up.
PRELOAD = ("asyncio.runners", "asyncio.base_futures", "encodings.idna", "traceback", "concurrent.futures")
_HANDED_KIND = {"NET_BASIC": "net", "BLOCK_BASIC": "block"}


def check_devices(manifest: dict[str, Any]) -> None:
    """Every declared device was handed over with its type, and nothing else."""
    given = handed()
    declared = {d["name"]: d["type"] for d in manifest["devices"]}
    for name, kind in declared.items():
        dev = given.get(name)
        if dev is None or dev.kind != _HANDED_KIND[kind]:
            raise UnikError(f"the manifest declares {kind} device {name!r} but the tender did not open it")
    for name in given:
        if name not in declared:
            raise UnikError(f"the tender opened {name!r}, which the manifest does not declare")


def _keep_sources(root: Path) -> None:
    """Cache the source of the artifact's imported modules; never read a file for a traceback later."""
    prefix = str(root) + os.sep
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.startswith(prefix) and path.endswith(".py"):
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            lines = text.splitlines(keepends=True)
            linecache.cache[path] = (len(text), None, lines, path)  # mtime None: never re-checked

    def no_disk(filename: str, module_globals: object = None) -> list[str]:
        return []

    linecache.updatecache = no_disk


def _threads_attempt_clone() -> None:
    """Make starting a thread ask for ``clone`` first, so that the report names it.

    glibc's ``pthread_create`` begins with ``gettid``, ``rt_sigaction`` and ``mprotect``
    for the new stack, any of which the filter refuses before ``clone`` is reached: the
    report would name a step, not the attempt.  Under the filter, CPython's thread
    starters make the ``clone`` call straight away instead (refused: the tender names it).
    """
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        _sandbox.attempt_thread()
        raise RuntimeError("threads cannot run under spt")  # not reached: clone is refused

    for module, names in ((_thread, ("start_new_thread", "start_new", "start_joinable_thread")),
                          (sys.modules.get("threading"), ("_start_new_thread", "_start_joinable_thread"))):
        for name in names:
            if module is not None and hasattr(module, name):
                setattr(module, name, refuse)


def boot(script: str) -> NoReturn:
    """Run the artifact whose ``__spt__.py`` is ``script`` under the sandbox."""
    root = Path(script).resolve().parent
    prog = os.environ.get("UNIK_PROG", root.parent.name)
    try:
        check_devices(json.loads((root / "manifest.json").read_text()))
    except UnikError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        sys.exit(2)
    runtime.set_root(root)
    if "devices.started()" not in (root / "main.py").read_text():
        print(f"{prog}: {root / 'main.py'} does not announce STARTED, where the sandbox seals the process: "
              "rebuild the artifact with this unik (unik build)", file=sys.stderr)
        sys.exit(2)
    # The first stage, before a module of the application is imported: its own namespaces
    # (network included), a read-only root holding only what the artifact reads
    # (unik_solo5.root), no_new_privs, and a filter refusing process creation, exec,
    # ptrace, sockets and writes to files. Nothing is compiled to disk from here on.
    sys.dont_write_bytecode = True
    # sysconfig's variables, now: it finds the user's base directory with os.path.expanduser, which
    # without HOME asks glibc's getpwuid, whose NSS tries nscd's socket, which the first stage
    # refuses (zoneinfo, which pydantic imports, asks sysconfig for TZPATH).
    import sysconfig

    sysconfig.get_config_vars()
    try:
        _sandbox.isolate()
        sandbox_root.enter(root, [f for f in os.environ.get(sandbox_root.FILES_ENV, "").split("\n") if f])
        _sandbox.first_stage(compile_first_stage())
    except OSError as exc:
        print(f"{prog}: cannot seal the process: {exc}", file=sys.stderr)
        sys.exit(125)
    spec = importlib.util.spec_from_file_location("__unik_main__", root / "main.py")
    assert spec is not None and spec.loader is not None
    main = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = main
    spec.loader.exec_module(main)
    for name in PRELOAD:
        importlib.import_module(name)
    kv.preload(root)
    _keep_sources(root)
    try:
        keys = runtime.parse_args(main.KEYS, sys.argv[1:], prog, syntax=solo5_syntax)
        keys = keys.with_args(key_args(handed(), set(keys.keys)))
    except UnikError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        sys.exit(2)

    # unik's loop (unik_tcpip.aio) when the plan has unik's stack; a selector loop either way.
    loop: Any = (main.EVENT_LOOP or asyncio.new_event_loop)()
    asyncio.set_event_loop(loop)
    # run_in_executor and to_thread size a default executor from os.cpu_count(), which
    # reads /sys: made now, a thread attempt reaches its clone (and is named so).
    from concurrent.futures import ThreadPoolExecutor

    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    devices = handed().values()
    fds = FdSets(
        tap=tuple(d.fd for d in devices if d.kind == "net"),
        block=tuple(d.fd for d in devices if d.kind == "block"),
        epoll=(loop._selector.fileno(),),  # type: ignore[attr-defined]
        wakeup=(loop._ssock.fileno(), loop._csock.fileno()),  # type: ignore[attr-defined]
    )
    plan = json.loads((root / "plan.json").read_text()) if (root / "plan.json").is_file() else {}
    program = compile_policy(fds, kinds={d.get("kind", "") for d in plan.get("devices", [])})

    def seal() -> None:
        # Every device is connected (the generated main.py announces STARTED just before
        # the application's start): certificates, keys and configuration were read with
        # the process's rights; from here on nothing more is. supervise() installed its
        # SIGINT/SIGTERM handlers before (signal.set_wakeup_fd stats and fcntls the
        # loop's wake-up descriptor, asyncio's sigaction): none of that is needed later.
        lifecycle.announce(lifecycle.BEFORE_SEAL)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            _sandbox.enter((0, *fds.all()), program, str(root))
            _threads_attempt_clone()
        except BaseException as exc:  # noqa: BLE001 - announce() would go on with the application
            print(f"{prog}: cannot seal the process: {exc}", file=sys.stderr)
            sys.stderr.flush()
            os._exit(125)  # maybe half-sealed: no clean-up is safe
        lifecycle.announce(lifecycle.SEALED)

    lifecycle.subscribe(lifecycle.STARTED, seal)

    async def run(keys: KeyValues) -> object:
        try:
            return await main.main(keys)
        except MemoryError:
            # Address space is bounded by --mem (RLIMIT_AS): say so rather than print a
            # traceback, which may itself need memory.
            os.write(2, f"{prog}: out of memory: the application reached its memory limit "
                     f"(--mem {os.environ.get(MEM_ENV, '?')} MiB; give more with unik run --mem SIZE)\n".encode())
            return OUT_OF_MEMORY

    try:
        status = loop.run_until_complete(runtime.supervise(run, keys))
    except BaseException:  # noqa: BLE001 - e.g. a KeyboardInterrupt before the handlers were in place
        traceback.print_exc()
        status = 1
    # The devices are disconnected (supervise waited for the application's task). Closing
    # the loop would restore signal dispositions and finalizing the interpreter would
    # take locks, tear down modules and unmap memory: system calls the filter need not
    # admit for a process whose work is done.  Flush what is buffered and leave.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status if 0 <= status <= 255 else 1)
