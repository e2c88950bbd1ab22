"""Applications without an entry function: an ASGI or aiohttp application, served on the plan's stack.

``[tool.unik] asgi = "pkg.module:app"`` names an ASGI application (Starlette, FastAPI...)
that uvicorn (or hypercorn: ``--server hypercorn``) serves; ``aiohttp =
"pkg.module:make_app"`` an aiohttp ``web.Application`` or a function making one.  Such an
application asks for two devices, ``stack`` and ``console``, and has the keys of
:data:`KEYS`.  The generated ``main.py`` imports the application and makes its server
(:class:`Uvicorn`, :class:`Hypercorn`, :class:`AioHttp`) before connecting the devices —
whatever the server loads lazily is loaded while the process may still open files (the
spt sandbox seals it once the devices are connected) — then awaits
``server.serve(stack=..., console=...)``.  The server listens through the running event
loop (``loop.create_server``), which is unik's loop on unik's stack, or asyncio's on the
host's sockets (``--net socket``); it logs, requests included, to the console.  hypercorn
binds its sockets before it serves: on a loop with a stack of its own (:class:`StackLoop`)
they are that stack's sockets, which the loop's ``create_server(sock=...)`` listens on.

A stop (SIGTERM, a VM's power button) closes the listener, lets requests in flight
finish for :data:`GRACE_S` seconds and runs the application's shutdown (ASGI lifespan,
aiohttp's ``on_shutdown``), then the devices disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from .errors import UserError
from .keys import Key, KeyValues

#: Seconds a stop gives the requests in flight before they are cut.
GRACE_S = 5.0
#: ``[tool.unik]`` keys naming a served application, with the servers each can use: ``--server`` -> class.
SERVED = {
    "asgi": {"uvicorn": "Uvicorn", "hypercorn": "Hypercorn"},
    "aiohttp": {"aiohttp": "AioHttp"},
}
#: The distribution each server class needs among the application's dependencies.
SERVER_DISTRIBUTIONS = {"Uvicorn": "uvicorn", "Hypercorn": "hypercorn", "AioHttp": "aiohttp"}
#: The devices a served application asks for: parameter of ``serve`` -> kind.
DEVICES = {"stack": "stack", "console": "console"}
WORKERS_WHY = ("a unik application is one process on one event loop, so there is one worker: run more "
               "instances (unik run -d) behind a load balancer to use more cores")


@runtime_checkable
class StackLoop(Protocol):
    """An event loop serving on a TCP/IP stack of its own (unik-lib-tcpip's ``UnikEventLoop``).

    Its ``create_server(sock=...)`` listens on the address a socket of :meth:`stack_socket`
    was bound to, where a host socket would be bound on the host's network (or refused).
    """

    def stack_socket(self, family: int = socket.AF_INET) -> Any:
        """An unconnected TCP socket of the loop's stack (bind it, then hand it to ``create_server(sock=)``)."""


def _nothing() -> None:
    """The default ``started`` callback."""


def check_workers(value: Any, keys: KeyValues) -> None:
    """``--workers``: only 1 (see :data:`WORKERS_WHY`)."""
    if value != 1:
        raise ValueError(f"{value} workers cannot be: {WORKERS_WHY}")


def keys_for(served: str) -> tuple[Key, ...]:
    """The keys of an application served as ``served`` (``asgi``, ``aiohttp``)."""
    port = "8000" if served == "asgi" else "8080"  # the servers' own defaults
    out = [
        Key("port", "the TCP port the application is served on", "int", port),
        Key("workers", "server processes: 1 (one process, one event loop)", "int", "1", check=check_workers),
        Key("access_log", "log each request on the console", "bool", "true"),
    ]
    if len(SERVED[served]) > 1:
        servers = tuple(SERVED[served])
        out.append(Key("server", f"the server ({' or '.join(servers)}; its distribution must be a dependency)",
                       choices=servers, default=servers[0], stage="configure"))
    return tuple(out)


def server_class(served: str, keys: KeyValues) -> str:
    """The name of the class in this module that serves ``served`` with ``keys`` (``--server``)."""
    servers = SERVED[served]
    choice = keys.get("server") if "server" in keys.keys else next(iter(servers))
    return servers[str(choice)]


class ConsoleLog(logging.Handler):
    """A logging handler writing each record as one line on the console device."""

    def __init__(self, console: Any) -> None:
        super().__init__(logging.INFO)
        self.console = console
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` on the console."""
        try:
            self.console.log(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never fail the application
            self.handleError(record)

    @contextlib.contextmanager
    def attached(self, *names: str) -> Iterator[None]:
        """Send the loggers ``names`` (at INFO) here, and only here, while in the block."""
        saved = []
        for name in names:
            logger = logging.getLogger(name)
            saved.append((logger, logger.level, logger.propagate))
            logger.addHandler(self)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        try:
            yield
        finally:
            for logger, level, propagate in saved:
                logger.removeHandler(self)
                logger.setLevel(level)
                logger.propagate = propagate


def _refuse_workers(workers: int) -> None:
    if workers != 1:
        raise UserError(f"--workers {workers}: {WORKERS_WHY}")


def _missing(server: str, exc: ImportError) -> Exception:
    """What to raise when importing ``server`` failed: it is not there, or something it imports is not."""
    if exc.name != server:
        return exc
    return UserError(f"{server} is not in the artifact: add {server!r} to [project] dependencies "
                     f"in pyproject.toml and build again")


class Uvicorn:
    """An ASGI application under uvicorn, on the running loop: ``loop="none"``, no signal handlers of its own.

    :meth:`serve` takes uvicorn's ``serve`` in its steps (``startup``, ``main_loop``,
    ``shutdown``) to announce STARTED between the first two.
    """

    LOGGERS = ("uvicorn.error",)

    def __init__(self, app: Any, *, port: int = 8000, workers: int = 1, access_log: bool = True) -> None:
        _refuse_workers(workers)
        # uvicorn calls multiprocessing.allow_connection_pickling() when imported, which imports
        # this lazily: named here, so that an image that trims the standard library carries it.
        import multiprocessing.connection  # noqa: F401
        try:
            import uvicorn  # type: ignore[import-not-found, unused-ignore]
        except ImportError as exc:
            raise _missing("uvicorn", exc) from None
        self.config = uvicorn.Config(app, port=port, loop="none", log_config=None, log_level="info",
                                     access_log=access_log, timeout_graceful_shutdown=GRACE_S)
        self.config.load()  # imports the protocols uvicorn picks (httptools or h11, websockets...)
        self.server = uvicorn.Server(self.config)  # its serve() would install signal handlers: unik's runtime has them

    async def serve(self, stack: Any, console: Any, started: Callable[[], None] = _nothing) -> int:
        """Serve on ``stack``'s address until cancelled (then shut down gracefully) or uvicorn exits.

        ``started()`` is called once uvicorn listens, after the application's start-up (what
        uvicorn's ``serve`` does, in its steps).
        """
        self.config.host = stack.ipv4.address
        access = ("uvicorn.access",) if self.config.access_log else ()  # uvicorn logs requests when it has a handler
        server = self.server
        with ConsoleLog(console).attached(*self.LOGGERS, *access):
            try:
                server.lifespan = self.config.lifespan_class(self.config)
                logging.getLogger("uvicorn.error").info("Started server process [%d]", os.getpid())
                await server.startup()
                started()
                if not server.should_exit:
                    await server.main_loop()
                if server.started:
                    await server.shutdown()
            except asyncio.CancelledError:
                if server.started:
                    server.should_exit = True
                    await server.shutdown()
                raise
            except SystemExit as exc:  # uvicorn exits 3 when it cannot start (a port in use, lifespan failed)
                return exc.code if isinstance(exc.code, int) else 1
        return 0


class Hypercorn:
    """An ASGI application under hypercorn (its ``serve``), on the running loop.

    hypercorn binds its sockets itself (``Config.create_sockets``) after the application's
    start-up, then serves them with ``asyncio.start_server(sock=...)``: its configuration
    here binds sockets of the loop's stack instead when the loop has one (:class:`StackLoop`),
    and ``started()`` is called once they are bound, right before they listen.
    """

    LOGGERS = ("hypercorn.error",)

    def __init__(self, app: Any, *, port: int = 8000, workers: int = 1, access_log: bool = True) -> None:
        _refuse_workers(workers)
        try:
            import hypercorn.asyncio  # type: ignore[import-not-found, unused-ignore]
            import hypercorn.config  # type: ignore[import-not-found, unused-ignore]
        except ImportError as exc:
            raise _missing("hypercorn", exc) from None
        self.app = app
        self.port = port
        self.config = _hypercorn_config(hypercorn.config)
        self.config.accesslog = logging.getLogger("hypercorn.access") if access_log else None
        self.config.errorlog = logging.getLogger("hypercorn.error")
        self.config.graceful_timeout = GRACE_S
        self._serve = hypercorn.asyncio.serve

    async def serve(self, stack: Any, console: Any, started: Callable[[], None] = _nothing) -> int:
        """Serve on ``stack``'s address until cancelled (then shut down gracefully)."""
        address = stack.ipv4.address
        self.config.bind = [f"{address}:{self.port}"]
        loop = asyncio.get_running_loop()
        self.config.unik_stack_loop = loop if isinstance(loop, StackLoop) else None
        self.config.unik_started = started
        stop = asyncio.Event()
        access = ("hypercorn.access",) if self.config.accesslog else ()
        with ConsoleLog(console).attached(*self.LOGGERS, *access):
            task = asyncio.ensure_future(self._serve(self.app, self.config, shutdown_trigger=stop.wait))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                stop.set()
                await task
                raise
        return 0


def _hypercorn_config(module: Any) -> Any:
    """A hypercorn ``Config`` whose ``create_sockets`` binds on the loop's stack when it has one.

    ``unik_stack_loop`` (a :class:`StackLoop`, or ``None`` for the host's sockets) and
    ``unik_started`` are set by :meth:`Hypercorn.serve`.
    """

    class StackConfig(module.Config):  # type: ignore[misc, name-defined]
        unik_stack_loop: StackLoop | None = None
        unik_started: Callable[[], None] = staticmethod(_nothing)

        def create_sockets(self) -> Any:
            if self.unik_stack_loop is None:
                sockets = super().create_sockets()
            else:
                bound = []
                for bind in self.bind:
                    host, _, port = bind.rpartition(":")
                    host = host.strip("[]")
                    sock = self.unik_stack_loop.stack_socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
                    sock.bind((host, int(port)))
                    bound.append(sock)
                sockets = module.Sockets([], bound, [])
            self.unik_started()
            return sockets

    return StackConfig()


class AioHttp:
    """An aiohttp ``web.Application`` (or a function, maybe async, making one) under aiohttp's runner."""

    LOGGERS = ("aiohttp.server", "aiohttp.web")

    def __init__(self, app: Any, *, port: int = 8080, workers: int = 1, access_log: bool = True) -> None:
        _refuse_workers(workers)
        try:
            from aiohttp import web
        except ImportError as exc:
            raise _missing("aiohttp", exc) from None
        self.web = web
        self.app = app
        self.port = port
        self.access_log = access_log

    async def application(self) -> Any:
        """The ``web.Application``: the one named, or what the named function makes."""
        app = self.app
        if not isinstance(app, self.web.Application):
            app = app()
            if asyncio.iscoroutine(app):
                app = await app
        if not isinstance(app, self.web.Application):
            raise UserError(f"[tool.unik] aiohttp names {self.app!r}, which made {type(app).__name__}: "
                            f"name an aiohttp web.Application or a function returning one")
        return app

    async def serve(self, stack: Any, console: Any, started: Callable[[], None] = _nothing) -> int:
        """Serve on ``stack``'s address until cancelled, then clean up (``on_shutdown``, ``on_cleanup``).

        ``started()`` is called once the site listens, after the application's ``on_startup``.
        """
        requests = ("aiohttp.access",) if self.access_log else ()
        with ConsoleLog(console).attached(*self.LOGGERS, *requests):
            app = await self.application()
            access = logging.getLogger("aiohttp.access") if self.access_log else None
            runner = self.web.AppRunner(app, handle_signals=False, access_log=access, shutdown_timeout=GRACE_S)
            await runner.setup()
            try:
                site = self.web.TCPSite(runner, stack.ipv4.address, self.port)
                await site.start()
                console.log(f"serving on http://{stack.ipv4.address}:{self.port}")
                started()
                await asyncio.Event().wait()  # until cancelled: a stop
            finally:
                await runner.cleanup()
        return 0
