"""Happy Eyeballs version 2 (RFC 8305): connecting by name over whichever family works first.

Family-neutral: the lookups and the connection attempts are callables, so the same
code runs with IPv4 alone (one lookup, attempts in order) and with both families.

* 3: AAAA and A are asked at once; an A answer first waits up to the Resolution Delay
  (50 ms) for the AAAA one, an AAAA answer first is used at once.
* 4: addresses alternate families, IPv6 first; answers arriving later join the list.
* 5: a new attempt starts every Connection Attempt Delay (250 ms) or as soon as the
  previous one fails; the first connection wins and the others are cancelled (and
  closed, should one complete meanwhile).

Attempts connect with a :class:`Pending` protocol and only the winner is handed to the
application's protocol (:func:`hand_over`), as asyncio makes its protocol only once a
socket has connected: a factory returning one shared protocol (``lambda: protocol``, as
``open_connection`` does) never sees two connections.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from .resolver import interleave

T = TypeVar("T")

RESOLUTION_DELAY_S = 0.05
CONNECTION_ATTEMPT_DELAY_S = 0.25


class Pending(asyncio.Protocol):
    """The protocol of an attempt: keeps what arrives until the winner is handed over."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        """Kept for the application's protocol."""
        self.data.append(bytes(data))

    def eof_received(self) -> bool:
        """Kept half-open: the application's protocol decides what the EOF does."""
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """Passed on once the application's protocol has the transport."""
        self.lost = (exc,)


def hand_over(transport: asyncio.BaseTransport, pending: Pending, protocol: asyncio.BaseProtocol) -> None:
    """Give the winning ``transport`` to ``protocol``: ``connection_made``, then what arrived meanwhile."""
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    for chunk in pending.data:
        if isinstance(protocol, asyncio.BufferedProtocol):
            view = memoryview(chunk)
            while view:
                buffer = memoryview(protocol.get_buffer(len(view)))
                n = min(len(buffer), len(view))
                buffer[:n] = view[:n]
                protocol.buffer_updated(n)
                view = view[n:]
        elif isinstance(protocol, asyncio.Protocol):
            protocol.data_received(chunk)
    if pending.eof and isinstance(protocol, (asyncio.Protocol, asyncio.BufferedProtocol)) \
            and not protocol.eof_received():
        transport.close()
    if pending.lost is not None:
        protocol.connection_lost(pending.lost[0])


class _Race(Generic[T]):
    """The state of one Happy Eyeballs connect: address list, attempts, errors."""

    def __init__(self, attempt: Callable[[str], Awaitable[T]], close: Callable[[T], None]) -> None:
        self.attempt, self.close = attempt, close
        self.queue: list[str] = []
        self.seen: set[str] = set()
        self.running: set[asyncio.Task[T]] = set()
        self.errors: list[BaseException] = []

    def add(self, addresses: Sequence[str]) -> None:
        fresh = [a for a in addresses if a not in self.seen]
        self.seen.update(fresh)
        self.queue = interleave(self.queue + fresh)

    def start_next(self) -> bool:
        if not self.queue:
            return False
        address = self.queue.pop(0)
        task = asyncio.ensure_future(self.attempt(address))
        self.running.add(task)
        return True

    async def cancel_all(self) -> None:
        for task in self.running:
            task.cancel()
        for task in self.running:
            try:
                result = await task
            except BaseException:  # noqa: BLE001 - a loser's fate does not matter
                continue
            self.close(result)
        self.running.clear()


async def connect(lookups: Sequence[tuple[int, Awaitable[Sequence[str]]]], attempt: Callable[[str], Awaitable[T]],
                  close: Callable[[T], None], *, resolution_delay: float = RESOLUTION_DELAY_S,
                  attempt_delay: float = CONNECTION_ATTEMPT_DELAY_S) -> T:
    """Race ``attempt(address)`` over the addresses ``lookups`` (family, awaitable) produce.

    Returns the first connection made; ``close`` disposes of any other that completed.
    Raises the lookup's error when no address was found, else an :class:`OSError`
    naming every failed attempt.
    """
    race: _Race[T] = _Race(attempt, close)
    pending: dict[asyncio.Future[Sequence[str]], int] = {
        asyncio.ensure_future(lookup): family for family, lookup in lookups}
    lookup_errors: list[BaseException] = []
    loop = asyncio.get_running_loop()

    def absorb(done: set[asyncio.Future[Sequence[str]]]) -> None:
        for future in done:
            pending.pop(future)
            error = future.exception()
            if error is None:
                race.add(future.result())
            else:
                lookup_errors.append(error)

    try:
        # RFC 8305 3: the first answer; an IPv4 one waits up to the Resolution Delay for IPv6's.
        while pending and not race.queue:
            done, _ = await asyncio.wait(set(pending), return_when=asyncio.FIRST_COMPLETED)
            absorb(done)
        v6_lookups = {f for f, family in pending.items() if family == socket.AF_INET6}
        if race.queue and v6_lookups:
            done, _ = await asyncio.wait(v6_lookups, timeout=resolution_delay)
            absorb(done)
        # RFC 8305 5: staggered attempts; a failure starts the next one at once.
        next_start = loop.time()
        while True:
            if not race.running:
                if race.queue:
                    race.start_next()
                    next_start = loop.time() + attempt_delay
                elif pending:
                    done, _ = await asyncio.wait(set(pending), return_when=asyncio.FIRST_COMPLETED)
                    absorb(done)
                    continue
                elif race.errors:
                    raise _attempts_error(race.errors)
                else:
                    raise _lookup_error(lookup_errors)
            waiters: set[asyncio.Future[Any]] = {*race.running, *pending}
            timeout = max(0.0, next_start - loop.time()) if race.queue else None
            done_any, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done_any:  # the Connection Attempt Delay ran out
                race.start_next()
                next_start = loop.time() + attempt_delay
                continue
            for future in done_any:
                if future in pending:
                    absorb({future})  # type: ignore[arg-type]
                    continue
                race.running.discard(future)  # type: ignore[arg-type]
                error = future.exception()
                if error is None:
                    winner: T = future.result()  # type: ignore[assignment]
                    await race.cancel_all()
                    return winner
                race.errors.append(error)
                if race.start_next():
                    next_start = loop.time() + attempt_delay
    finally:
        for future in pending:
            future.cancel()
        await race.cancel_all()


def _lookup_error(errors: list[BaseException]) -> BaseException:
    if errors:
        return errors[0]
    return OSError("no address to connect to")


def _attempts_error(errors: list[BaseException]) -> OSError:
    if len(errors) == 1 and isinstance(errors[0], OSError):
        return errors[0]
    first = errors[0]
    return OSError(getattr(first, "errno", None), "every address failed: " + "; ".join(str(e) for e in errors))
