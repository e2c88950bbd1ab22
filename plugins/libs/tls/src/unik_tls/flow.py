"""TLS over any :class:`unik.devices.Flow`: OpenSSL on memory BIOs, flows in and flows out.

One :class:`TLSConnection` per flow holds an :class:`ssl.SSLObject` between two
:class:`ssl.MemoryBIO` buffers: ciphertext read from the underlying flow goes into
``incoming``, what OpenSSL writes to ``outgoing`` goes to the underlying writer.
Nothing runs in the background: reads pull from the underlying flow on demand, writes
are encrypted when the writer flushes (at once for large writes, otherwise batched
until the end of the event-loop turn or the next ``drain()``).

The layering avoids copies where it can: ciphertext is read from the underlying flow in
big chunks (many records per call), ``read(n)`` on an empty buffer hands out OpenSSL's
plaintext without buffering it again, and queued writes are joined and encrypted in one
call that produces every record at once.
"""

from __future__ import annotations

import asyncio
import copy
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from unik.devices import Flow, FlowWriter
from unik.errors import (
    TLSCertificateError,
    TLSError,
    TLSHandshakeError,
    TLSHandshakeTimeout,
    TLSProtocolError,
    TLSTruncated,
)

__all__ = ["READ_CHUNK", "FLUSH_THRESHOLD", "TLSConnection", "TLSReader", "TLSWriter", "handshake", "wrap"]

#: Ciphertext asked of the underlying flow per read: many 16 KiB records at once.
READ_CHUNK = 256 * 1024
#: Queued plaintext beyond this is encrypted and sent at once rather than at the end of the turn.
FLUSH_THRESHOLD = 64 * 1024
#: Plaintext asked of OpenSSL per call (one record at most is returned).
RECORD = 16 * 1024 + 256
#: Buffer limit of readers, as asyncio's default.
STREAM_LIMIT = 2**16
#: Ciphertext held in OpenSSL's incoming buffer before the transport is paused, and resumed.
PAUSE_AT = 1 << 20
RESUME_AT = 256 * 1024


def _peer(writer: FlowWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "peer"


def _ssl_reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")


class TLSConnection:
    """The state one TLS flow shares between its reader and writer."""

    def __init__(self, sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 flow: Flow) -> None:
        self.sslobj = sslobj
        self.incoming = incoming
        self.outgoing = outgoing
        self.reader = flow.reader
        self.writer = flow.writer
        self.peer = _peer(flow.writer)
        #: The error that ended the flow; every later operation raises a copy of it (see fail()).
        self.error: TLSError | None = None
        #: The peer's close_notify arrived.
        self.peer_closed = False
        #: Our close_notify was sent.
        self.closed = False
        #: Called with the connection when its writer closes (the device keeps client sessions).
        self.on_close: Callable[[TLSConnection], None] | None = None
        # The direct path (see _take_over): the transport feeding ``incoming`` itself.
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._eof_written = False
        self._lost: BaseException | None = None
        self._paused = False
        self._take_over()

    # -- ciphertext to and from the underlying flow -------------------------------------

    def _take_over(self) -> None:
        """Feed ``incoming`` straight from the transport when the flow is asyncio's streams.

        Both unik stacks hand out :class:`asyncio.StreamReader`/``StreamWriter`` pairs over an
        :class:`asyncio.Transport` (a kernel socket's, or unik-lib-tcpip's connection).  For
        those, :class:`_Feeder` replaces the stream protocol on the transport, as asyncio's
        own ``start_tls`` does: ciphertext goes from the socket into a reused buffer and from
        there into OpenSSL, without the stream reader's two copies.  Writes, ``drain`` and
        ``wait_closed`` still go through the stream writer (flow control is forwarded to
        its protocol).  Anything else takes the generic path: ``reader.read()``.
        """
        reader, writer = self.reader, self.writer
        if not (isinstance(reader, asyncio.StreamReader) and isinstance(writer, asyncio.StreamWriter)):
            return
        transport = writer.transport
        # The one private attribute used: the bytes the stream reader already holds.
        buffered = getattr(reader, "_buffer", None)
        if (not isinstance(buffered, bytearray) or reader.exception() is not None
                or not isinstance(transport, asyncio.Transport) or transport.is_closing()):
            return
        previous = transport.get_protocol()
        if buffered:
            self.incoming.write(bytes(buffered))
            buffered.clear()
        self._eof = reader.at_eof()
        transport.set_protocol(_Feeder(self, previous))
        self._transport = transport
        if not self._eof and not transport.is_reading():
            transport.resume_reading()

    def _received(self, data: bytes | memoryview) -> None:
        self.incoming.write(data)
        if not self._paused and self.incoming.pending > PAUSE_AT and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def _ended(self, exc: BaseException | None) -> None:
        self._eof = True
        if exc is not None and self._lost is None:
            self._lost = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def flush(self) -> None:
        """Send what OpenSSL wrote to the outgoing BIO."""
        if self.outgoing.pending:
            self.writer.write(self.outgoing.read())

    async def _feed(self) -> bool:
        """Move ciphertext from the underlying flow into OpenSSL; ``False`` at its EOF."""
        self.flush()
        if self._transport is None:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                self.incoming.write_eof()
                return False
            self.incoming.write(data)
            return True
        if self._lost is not None:
            if isinstance(self._lost, ConnectionError):
                raise copy.copy(self._lost)  # the stored one never gets a traceback: see fail()
            raise ConnectionResetError(str(self._lost))
        if self._eof:
            if not self._eof_written:
                self._eof_written = True
                self.incoming.write_eof()
            return False
        if self._paused:  # OpenSSL took all it could and wants more
            self._paused = False
            self._transport.resume_reading()
        if self._waiter is not None:
            raise RuntimeError("two coroutines are reading from one TLS flow")  # as asyncio's streams
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        return True

    def fail(self, exc: TLSError) -> TLSError:
        """End the flow with ``exc``: send any pending alert, close the underlying flow; the error to raise.

        The connection keeps ``exc`` and callers raise copies (:meth:`failure`): a raised
        exception's traceback holds the frames that hold this connection, so keeping the
        raised one would make a cycle that only the garbage collector frees, and a peer
        failing handshakes on purpose could grow the server until it runs.
        """
        if self.error is None:
            self.error = exc
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the flow is going away; the TLS error is what matters
                pass
            self.writer.close()
        return self.failure()

    def failure(self) -> TLSError:
        """A copy of the error that ended the flow, to raise (see :meth:`fail`)."""
        assert self.error is not None
        return copy.copy(self.error)

    def _protocol_error(self, exc: ssl.SSLError) -> TLSError:
        if isinstance(exc, ssl.SSLEOFError):
            return TLSTruncated(f"TLS flow from {self.peer}: connection closed without close_notify (truncated)")
        return TLSProtocolError(f"TLS flow from {self.peer}: {_ssl_reason(exc)}")

    # -- plaintext -------------------------------------------------------------------------

    async def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes of plaintext (one record at most); ``b""`` after close_notify."""
        if self.error is not None:
            raise self.failure()
        if self.peer_closed:
            return b""
        sslobj = self.sslobj
        while True:
            try:
                data = sslobj.read(n if n < RECORD else RECORD)
            except ssl.SSLWantReadError:
                try:
                    await self._feed()
                except ConnectionError as exc:
                    raise self.fail(TLSTruncated(
                        f"TLS flow from {self.peer}: {exc.strerror or exc} before close_notify")) from exc
                continue
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                self.flush()
                return b""
            except ssl.SSLError as exc:
                raise self.fail(self._protocol_error(exc)) from None
            if self.outgoing.pending:  # a key update answered, an alert...
                self.flush()
            if self._paused and self.incoming.pending < RESUME_AT and self._transport is not None:
                self._paused = False
                self._transport.resume_reading()
            return data

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` into records and hand them to the underlying writer."""
        if self.error is not None:
            raise self.failure()
        try:
            self.sslobj.write(data)
        except ssl.SSLError as exc:
            raise self.fail(self._protocol_error(exc)) from None
        self.flush()

    def close_notify(self) -> None:
        """Send our close_notify alert (once)."""
        if self.closed or self.error is not None:
            return
        self.closed = True
        try:
            self.sslobj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLSyscallError):
            pass  # the alert is in the BIO; the peer's own close_notify is not awaited
        except ssl.SSLError:
            return
        self.flush()


#: The per-thread receive buffer of :class:`_Feeder`.
_RECEIVE = threading.local()


class _Feeder(asyncio.Protocol, asyncio.BufferedProtocol):
    """The transport's protocol on the direct path: ciphertext into the connection's BIO.

    A :class:`asyncio.BufferedProtocol` for kernel sockets (``recv_into`` a reused
    buffer), a plain :class:`asyncio.Protocol` for transports that call
    ``data_received``.  Write flow control and the end of the connection are forwarded
    to the stream protocol it replaced, so the stream writer's ``drain`` and
    ``wait_closed`` work as before.
    """

    def __init__(self, conn: TLSConnection, previous: asyncio.BaseProtocol) -> None:
        self._conn = conn
        self._previous = previous

    def get_buffer(self, sizehint: int) -> memoryview:
        # One receive buffer per thread, shared by every connection: the transport fills it
        # and calls buffer_updated at once, which copies it into the BIO before returning.
        buffer: memoryview | None = getattr(_RECEIVE, "buffer", None)
        if buffer is None:
            buffer = _RECEIVE.buffer = memoryview(bytearray(READ_CHUNK))
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._conn._received(_RECEIVE.buffer[:nbytes])

    def data_received(self, data: bytes) -> None:
        self._conn._received(data)

    def eof_received(self) -> bool:
        self._conn._ended(None)
        return True  # our close_notify and close come later, from the writer

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            # A failed send's traceback holds the frames that wrote, and its context the error
            # being handled then (whose traceback holds more): they hold the connection, which
            # keeps this error, as the stream reader does.  Drop both, or the cycle lives until
            # the garbage collector runs; the error itself is what gets reported.
            exc.__traceback__ = exc.__context__ = exc.__cause__ = None
        self._conn._ended(exc)
        self._previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self._previous.pause_writing()

    def resume_writing(self) -> None:
        self._previous.resume_writing()


async def handshake(conn: TLSConnection, timeout: float) -> None:
    """Run the handshake on ``conn`` within ``timeout`` seconds, or raise a :class:`TLSHandshakeError`.

    On failure the alert OpenSSL produced goes to the peer and the underlying flow is closed.
    """

    async def run() -> None:
        while True:
            try:
                conn.sslobj.do_handshake()
            except ssl.SSLWantReadError:
                try:
                    more = await conn._feed()
                except ConnectionError as exc:
                    raise conn.fail(TLSHandshakeError(f"TLS handshake with {conn.peer}: {exc}")) from exc
                if not more:
                    raise conn.fail(TLSHandshakeError(
                        f"TLS handshake with {conn.peer}: the peer closed the connection")) from None
                continue
            except ssl.SSLCertVerificationError as exc:
                raise conn.fail(TLSCertificateError(
                    f"TLS handshake with {conn.peer}: certificate verify failed: {exc.verify_message}",
                    exc.verify_code, exc.verify_message)) from None
            except ssl.SSLError as exc:
                raise conn.fail(TLSHandshakeError(
                    f"TLS handshake with {conn.peer} failed: {_ssl_reason(exc)}")) from None
            except ConnectionError as exc:
                raise conn.fail(TLSHandshakeError(f"TLS handshake with {conn.peer}: {exc}")) from exc
            conn.flush()
            return

    try:
        if sys.version_info >= (3, 11):  # no extra task per handshake
            async with asyncio.timeout(timeout):
                await run()
        else:
            await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        raise conn.fail(TLSHandshakeTimeout(
            f"TLS handshake with {conn.peer}: not done within {timeout:g} s")) from None


class TLSReader:
    """The plaintext reading half of a TLS flow: the :class:`asyncio.StreamReader` methods unik uses.

    ``read(n)`` with nothing buffered returns OpenSSL's plaintext directly (one record);
    ``readuntil``/``readexactly`` buffer as asyncio does, with the same errors
    (:class:`asyncio.IncompleteReadError`, :class:`asyncio.LimitOverrunError`).  A
    truncated or corrupted stream raises a :class:`unik.errors.TLSError`.
    """

    def __init__(self, conn: TLSConnection, limit: int = STREAM_LIMIT) -> None:
        self._conn = conn
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False

    async def _fill(self) -> bool:
        """Append plaintext to the buffer; ``False`` at EOF."""
        if self._eof:
            return False
        data = await self._conn.recv(max(self._limit, RECORD))
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (everything until EOF when ``n`` is -1); ``b""`` at EOF."""
        if self._conn.error is not None:  # as asyncio's streams: the error, not what was buffered
            raise self._conn.failure()
        if n == 0:
            return b""
        if n < 0:
            while await self._fill():
                pass
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        if not self._buffer:
            if self._eof:
                return b""
            data = await self._conn.recv(n)
            if not data:
                self._eof = True
            return data
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or :class:`asyncio.IncompleteReadError` at EOF."""
        if self._conn.error is not None:  # as asyncio's streams: the error, not what was buffered
            raise self._conn.failure()
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        while len(self._buffer) < n:
            if not await self._fill():
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(partial, n)
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Bytes up to and including ``separator``, as :meth:`asyncio.StreamReader.readuntil`."""
        if self._conn.error is not None:  # as asyncio's streams: the error, not what was buffered
            raise self._conn.failure()
        seplen = len(separator)
        if seplen == 0:
            raise ValueError("Separator should be at least one-byte string")
        offset = 0
        while True:
            index = self._buffer.find(separator, offset)
            if index >= 0:
                if index > self._limit:
                    raise asyncio.LimitOverrunError("Separator is found, but chunk is longer than limit", index)
                break
            offset = max(0, len(self._buffer) + 1 - seplen)
            if offset > self._limit:
                raise asyncio.LimitOverrunError("Separator is not found, and chunk exceed the limit", offset)
            if not await self._fill():
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(partial, None)
        end = index + seplen
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    async def readline(self) -> bytes:
        """One line with its newline (the rest at EOF), as :meth:`asyncio.StreamReader.readline`."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            if self._buffer.startswith(b"\n", exc.consumed):
                del self._buffer[:exc.consumed + 1]
            else:
                self._buffer.clear()
            raise ValueError(exc.args[0]) from None

    def at_eof(self) -> bool:
        """Whether the peer closed (close_notify) and the buffer is empty."""
        return self._eof and not self._buffer

    def exception(self) -> BaseException | None:
        """The TLS error that ended the flow, if any."""
        return self._conn.error

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if line == b"":
            raise StopAsyncIteration
        return line


class TLSWriter:
    """The plaintext writing half of a TLS flow: the :class:`asyncio.StreamWriter` methods unik uses.

    Small writes are queued and encrypted together at the end of the event-loop turn
    (or at ``drain()``), so a response written in pieces still leaves in few records.
    ``close()`` sends close_notify before closing the underlying flow; ``write_eof()``
    sends close_notify and keeps reading possible (TLS 1.3 half-close).
    """

    def __init__(self, conn: TLSConnection, reader: TLSReader) -> None:
        self._conn = conn
        self._reader = reader
        self._pending: list[bytes | bytearray | memoryview] = []
        self._pending_size = 0
        self._scheduled = False
        self._closing = False
        self._eof_sent = False

    @property
    def underlying(self) -> FlowWriter:
        """The writer of the flow carrying the ciphertext."""
        return self._conn.writer

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        pending, self._pending, self._pending_size = self._pending, [], 0
        self._conn.send(pending[0] if len(pending) == 1 else b"".join(pending))

    def _flush_soon(self) -> None:
        try:
            self._flush()
        except TLSError:
            pass  # recorded on the connection; the next write, drain or read raises it

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; it is encrypted at the end of this turn, at ``drain()``, or now if large."""
        if self._conn.error is not None:
            raise self._conn.failure()
        if self._closing or self._eof_sent:
            raise TLSError("write on a TLS flow after close() or write_eof()")
        if not data:
            return
        if not isinstance(data, bytes):
            data = bytes(data)  # the caller may reuse its buffer
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= FLUSH_THRESHOLD:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def writelines(self, data: Sequence[bytes]) -> None:
        """Queue each buffer of ``data``."""
        for chunk in data:
            self.write(chunk)

    def can_write_eof(self) -> bool:
        """Always: ``write_eof`` sends close_notify."""
        return True

    def write_eof(self) -> None:
        """Send queued data and close_notify; reading goes on (TLS 1.3 half-close)."""
        if self._eof_sent or self._closing:
            return
        self._flush()
        self._eof_sent = True
        self._conn.close_notify()

    async def drain(self) -> None:
        """Encrypt what is queued and wait until the underlying writer has room again."""
        if self._conn.error is not None:
            raise self._conn.failure()
        self._flush()
        await self._conn.writer.drain()

    def close(self) -> None:
        """Send queued data and close_notify, then close the underlying flow."""
        if self._closing:
            return
        self._closing = True
        if self._conn.error is None:
            if self._conn.on_close is not None:
                self._conn.on_close(self._conn)
            try:
                self._flush()
                self._conn.close_notify()
            except (TLSError, ConnectionError, RuntimeError):
                pass
        self._conn.writer.close()

    def is_closing(self) -> bool:
        """Whether :meth:`close` was called or the underlying flow is closing."""
        return self._closing or self._conn.writer.is_closing()

    async def wait_closed(self) -> None:
        """Wait until the underlying flow is closed."""
        await self._conn.writer.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """TLS details, else the underlying flow's (``peername``...).

        TLS names: ``ssl_object``, ``peercert``, ``cipher``, ``tls_version``,
        ``alpn_protocol``, ``server_hostname``, ``session_reused``, ``compression``.
        """
        sslobj = self._conn.sslobj
        if name == "ssl_object":
            return sslobj
        if name == "peercert":
            return sslobj.getpeercert()
        if name == "cipher":
            return sslobj.cipher()
        if name == "tls_version":
            return sslobj.version()
        if name == "alpn_protocol":
            return sslobj.selected_alpn_protocol()
        if name == "server_hostname":
            return sslobj.server_hostname
        if name == "session_reused":
            return sslobj.session_reused
        if name == "compression":
            return sslobj.compression()
        return self._conn.writer.get_extra_info(name, default)


def wrap(conn: TLSConnection, limit: int = STREAM_LIMIT) -> Flow:
    """The plaintext :class:`Flow` of a connection whose handshake is done."""
    reader = TLSReader(conn, limit)
    writer = TLSWriter(conn, reader)
    return Flow(reader, writer)
