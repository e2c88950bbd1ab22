"""The device model: small asynchronous interfaces an application is written against.

An application's entry function names the devices it needs by annotating its
parameters with these protocols (``async def start(stack: Stack, htdocs: KVRO)``).
A target or a library provides an implementation of each.  Implementations are
acquired with an asynchronous class method ``connect(...)`` and released with
``disconnect()``; the generated ``main.py`` does both, in dependency order.

Errors are typed (:mod:`unik.errors`), never bare asserts.

:data:`KINDS` maps the names used in ``[tool.unik.devices]`` (``kind = "kv_ro"``) and in
the plan to the protocols.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from .record import FrozenRecord, Record

if TYPE_CHECKING:  # annotations only: the plugin manager imports this module for every command
    import asyncio

__all__ = [
    "Buffer", "Device", "Console", "MonotonicClock", "WallClock", "Sleep",
    "EntropySource", "Random", "Network", "PollableNetwork", "NetworkStats", "Offloads", "TxOffload",
    "Block", "KVRO", "KVRW", "EntryKind", "Flow", "FlowReader", "FlowWriter",
    "TCP", "UDP", "UDPEndpoint", "IPv4Config", "Stack", "FileSystem", "File", "FileStat",
    "TLS", "KINDS", "kind_of",
]


#: What devices accept where they take bytes: any contiguous buffer, to spare copies.
Buffer = bytes | bytearray | memoryview


@runtime_checkable
class Device(Protocol):
    """What every device has: a way to release it.

    Implementations also define ``@classmethod async def connect(cls, **kw)``: its
    keyword arguments are the device's dependencies (other devices) and options.
    """

    async def disconnect(self) -> None:
        """Release the device; later calls raise :class:`unik.errors.DeviceClosed`."""


# --- console and time ----------------------------------------------------------------


@runtime_checkable
class Console(Device, Protocol):
    """A text console: stdout on Unix, the serial port or hvc0 in a VM."""

    def log(self, message: str) -> None:
        """Write one line (a newline is appended) and flush it."""

    async def write(self, data: bytes) -> None:
        """Write raw bytes."""


@runtime_checkable
class MonotonicClock(Device, Protocol):
    """A clock that never goes backwards (mirage's ``mclock``)."""

    def now_ns(self) -> int:
        """Nanoseconds since an arbitrary, fixed origin."""


@runtime_checkable
class WallClock(Device, Protocol):
    """Calendar time (mirage's ``pclock``); may jump when the host clock is set."""

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, UTC."""


@runtime_checkable
class Sleep(Device, Protocol):
    """Suspends the caller for a while (mirage's ``time``)."""

    async def sleep_ns(self, ns: int) -> None:
        """Return after at least ``ns`` nanoseconds."""

    async def sleep(self, seconds: float) -> None:
        """Return after at least ``seconds`` seconds."""


# --- randomness ------------------------------------------------------------------------


@runtime_checkable
class EntropySource(Device, Protocol):
    """A raw source of unpredictable bytes, with an estimate of its quality."""

    @property
    def name(self) -> str:
        """The source's name (in health-test reports)."""

    @property
    def quality(self) -> float:
        """Estimated bits of min-entropy per output byte, 0.0 to 8.0."""

    async def read(self, n: int) -> bytes:
        """Return exactly ``n`` raw bytes from the source."""


@runtime_checkable
class Random(Device, Protocol):
    """A seeded cryptographically secure pseudo-random generator."""

    def generate(self, n: int) -> bytes:
        """Return ``n`` random bytes; raises :class:`unik.errors.NotSeeded` if unseeded."""


# --- network ---------------------------------------------------------------------------


class NetworkStats(Record):
    """Counters kept by a :class:`Network` device."""

    __slots__ = ("rx_bytes", "rx_dropped", "rx_errors", "rx_frames", "tx_bytes", "tx_dropped", "tx_errors",
                 "tx_frames")
    rx_frames: int
    rx_bytes: int
    tx_frames: int
    tx_bytes: int
    rx_dropped: int
    tx_dropped: int
    rx_errors: int
    tx_errors: int

    def __init__(self, rx_frames: int = 0, rx_bytes: int = 0, tx_frames: int = 0, tx_bytes: int = 0,
                 rx_dropped: int = 0, tx_dropped: int = 0, rx_errors: int = 0, tx_errors: int = 0) -> None:
        self.rx_frames, self.rx_bytes, self.tx_frames, self.tx_bytes = rx_frames, rx_bytes, tx_frames, tx_bytes
        self.rx_dropped, self.tx_dropped, self.rx_errors, self.tx_errors = rx_dropped, tx_dropped, rx_errors, tx_errors


class Offloads(FrozenRecord):
    """Work the NIC (or the host behind a TAP) can do for the stack.

    ``tx_csum``: frames may leave with a partial checksum (see :class:`TxOffload`);
    ``tso``: TCP segments up to 64 KiB may be handed over for segmentation;
    ``rx_csum``: received frames were already verified by the NIC;
    ``gro``: received TCP frames may be coalesced and exceed the MTU.
    """

    __slots__ = ("gro", "rx_csum", "tso", "tx_csum")
    tx_csum: bool
    tso: bool
    rx_csum: bool
    gro: bool

    def __init__(self, tx_csum: bool = False, tso: bool = False, rx_csum: bool = False, gro: bool = False) -> None:
        self._set(tx_csum=tx_csum, tso=tso, rx_csum=rx_csum, gro=gro)


class TxOffload(NamedTuple):
    """Per-frame instructions in the layout of the virtio-net header.

    ``csum_start``/``csum_offset``: where the NIC computes and stores the L4 checksum;
    ``gso_type`` (0 none, 1 TCPv4, 3 UDP, 4 TCPv6) with ``gso_size`` (the MSS) and
    ``hdr_len`` (bytes of headers to copy into each segment).
    """

    csum_start: int
    csum_offset: int
    gso_type: int = 0
    gso_size: int = 0
    hdr_len: int = 0


@runtime_checkable
class Network(Device, Protocol):
    """An Ethernet interface: raw frames in and out."""

    # Read-only members: a device may keep them in attributes or compute them.
    @property
    def name(self) -> str:
        """The device's name."""

    @property
    def mac(self) -> bytes:
        """Its Ethernet address (6 bytes)."""

    @property
    def mtu(self) -> int:
        """The largest IP packet a frame carries."""

    @property
    def offloads(self) -> Offloads:
        """What the NIC does for the stack."""

    @property
    def stats(self) -> NetworkStats:
        """Its counters."""

    async def read(self, limit: int = 64) -> list[bytes]:
        """Wait for at least one frame and return up to ``limit`` frames."""

    async def write(self, frame: Buffer, offload: TxOffload | None = None) -> None:
        """Send one Ethernet frame (without FCS); ``offload`` needs ``offloads``."""


@runtime_checkable
class PollableNetwork(Network, Protocol):
    """A :class:`Network` with a synchronous, batched core: the fast path of a TCP/IP stack.

    The stack registers :meth:`fileno` with its event loop and, each time it is readable,
    takes a batch with :meth:`read_nowait` and processes it in place; replies go out with
    :meth:`send` at the end of that turn of the loop.  No task wakes per frame and nothing
    is awaited.  A network without it works through ``read``/``write``, more slowly (the
    stack says so in its log and its ``stats``).
    """

    def fileno(self) -> int:
        """A descriptor that polls readable while frames wait (``-1`` once closed)."""

    def read_nowait(self, limit: int = 64) -> list[bytes]:
        """Up to ``limit`` frames already received (maybe none), without waiting."""

    def send(self, frame: Buffer, offload: TxOffload | None = None) -> bool:
        """Send one frame now; ``False`` when a full queue dropped it (TCP resends)."""


# --- block -----------------------------------------------------------------------------


@runtime_checkable
class Block(Device, Protocol):
    """A disk: fixed-size sectors addressed from 0."""

    @property
    def sector_size(self) -> int:
        """Bytes per sector."""

    @property
    def sectors(self) -> int:
        """How many sectors the disk has."""

    @property
    def read_only(self) -> bool:
        """Whether writes are refused."""

    async def read(self, sector: int, count: int) -> bytes:
        """Read ``count`` sectors starting at ``sector``."""

    async def write(self, sector: int, data: Buffer) -> None:
        """Write whole sectors (``len(data)`` is a multiple of ``sector_size``)."""

    async def flush(self) -> None:
        """Make every completed write durable."""

    async def discard(self, sector: int, count: int) -> None:
        """Tell the disk the sectors are unused; may raise ``UnsupportedOperation``."""


# --- key/value stores --------------------------------------------------------------


class EntryKind(enum.Enum):
    """What a key names in a key/value store."""

    VALUE = "value"
    DICTIONARY = "dictionary"


@runtime_checkable
class KVRO(Device, Protocol):
    """A read-only key/value store; keys are ``/``-separated paths."""

    async def exists(self, key: str) -> EntryKind | None:
        """What ``key`` names, or ``None``."""

    async def get(self, key: str) -> bytes:
        """The value of ``key``; raises ``KeyNotFound`` or ``NotAValue``."""

    async def get_partial(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the value from ``offset`` (fewer at the end)."""

    async def list(self, key: str = "") -> list[tuple[str, EntryKind]]:
        """The entries directly under the dictionary ``key``, sorted by name."""

    async def size(self, key: str) -> int:
        """Length of the value in bytes."""

    async def last_modified(self, key: str) -> int:
        """Modification time, nanoseconds since the epoch."""

    async def digest(self, key: str) -> bytes:
        """SHA-256 of the value."""


@runtime_checkable
class KVRW(KVRO, Protocol):
    """A key/value store that can be written."""

    async def set(self, key: str, value: bytes) -> None:
        """Create or replace the value (parent dictionaries are created)."""

    async def set_partial(self, key: str, offset: int, data: bytes) -> None:
        """Overwrite part of a value, growing it if needed."""

    async def remove(self, key: str) -> None:
        """Remove a value or a whole dictionary."""

    async def rename(self, source: str, dest: str) -> None:
        """Move a value or dictionary."""


# --- streams, TCP/IP stack ---------------------------------------------------------


@runtime_checkable
class FlowReader(Protocol):
    """The reading half of a byte stream; a subset of :class:`asyncio.StreamReader`."""

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all until EOF when ``n`` is -1); ``b""`` at EOF."""

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or ``asyncio.IncompleteReadError``."""

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Bytes up to and including ``separator``."""

    async def readline(self) -> bytes:
        """One line, with its newline."""

    def at_eof(self) -> bool:
        """Whether the peer closed and the buffer is empty."""


@runtime_checkable
class FlowWriter(Protocol):
    """The writing half of a byte stream; a subset of :class:`asyncio.StreamWriter`."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending."""

    def writelines(self, data: Sequence[bytes]) -> None:
        """Queue each buffer of ``data``."""

    def write_eof(self) -> None:
        """Close the sending half (TCP FIN) after queued data."""

    def can_write_eof(self) -> bool:
        """Whether :meth:`write_eof` is supported."""

    async def drain(self) -> None:
        """Wait until the send buffer has room again."""

    def close(self) -> None:
        """Close the stream."""

    def is_closing(self) -> bool:
        """Whether :meth:`close` was called or the stream is closing."""

    async def wait_closed(self) -> None:
        """Wait until the stream is closed."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport details: ``peername``, ``sockname``, ``ssl_object``..."""


class Flow(NamedTuple):
    """A connected byte stream (TCP or TLS): ``reader, writer = await tcp.connect(...)``."""

    reader: FlowReader
    writer: FlowWriter


#: The handler signature of :func:`asyncio.start_server`.
FlowHandler = Callable[[FlowReader, FlowWriter], Awaitable[None]]


@runtime_checkable
class Server(Protocol):
    """A listening TCP service; a subset of :class:`asyncio.Server`."""

    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...
    async def serve_forever(self) -> None: ...


@runtime_checkable
class TCP(Protocol):
    """TCP on a :class:`Stack`."""

    async def connect(self, host: str, port: int) -> Flow:
        """Open a connection."""

    async def start_server(self, handler: FlowHandler, port: int) -> Server:
        """Accept connections on ``port``, calling ``handler(reader, writer)`` for each."""

    async def create_connection(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """Open a connection running ``protocol_factory()``, as ``loop.create_connection``."""

    async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol], port: int) -> Server:
        """Listen on ``port``, running ``protocol_factory()`` per connection, as ``loop.create_server``.

        This is the adapter that runs any :class:`asyncio.Protocol` (an h11 server, say)
        on the stack unchanged.
        """


class Datagram(NamedTuple):
    """A received UDP datagram."""

    data: bytes
    source: tuple[str, int]


@runtime_checkable
class UDPEndpoint(Protocol):
    """A bound UDP port."""

    async def recvfrom(self) -> Datagram:
        """The next datagram received on the port."""

    async def sendto(self, data: bytes, destination: tuple[str, int]) -> None:
        """Send one datagram to ``(address, port)``."""

    def close(self) -> None:
        """Release the port."""


@runtime_checkable
class UDP(Protocol):
    """UDP on a :class:`Stack`."""

    async def bind(self, port: int = 0) -> UDPEndpoint:
        """Bind a local port (0: any free port)."""


class IPv4Config(FrozenRecord):
    """An interface's IPv4 configuration."""

    __slots__ = ("address", "gateway", "prefix")
    address: str
    prefix: int
    gateway: str | None

    def __init__(self, address: str, prefix: int, gateway: str | None = None) -> None:
        self._set(address=address, prefix=prefix, gateway=gateway)


@runtime_checkable
class Stack(Device, Protocol):
    """A TCP/UDP/IPv4 stack: unik's own over a :class:`Network`, or the host's sockets.

    The members are read-only here, so that a stack may keep its own classes in them (a
    ``SocketTCP`` is a :class:`TCP`) and still be a ``Stack`` to a type checker.
    """

    @property
    def tcp(self) -> TCP:
        """TCP on this stack."""

    @property
    def udp(self) -> UDP:
        """UDP on this stack."""

    @property
    def ipv4(self) -> IPv4Config:
        """The interface's IPv4 configuration."""


# --- filesystem and TLS ------------------------------------------------------------


class FileStat(FrozenRecord):
    """What :meth:`FileSystem.stat` reports."""

    __slots__ = ("atime_ns", "attributes", "ctime_ns", "is_dir", "mtime_ns", "name", "size")
    name: str
    size: int
    is_dir: bool
    mtime_ns: int
    attributes: dict[str, Any]
    #: Creation and last-access times, where the filesystem keeps them.
    ctime_ns: int | None
    atime_ns: int | None

    def __init__(self, name: str, size: int, is_dir: bool, mtime_ns: int, attributes: dict[str, Any] | None = None,
                 ctime_ns: int | None = None, atime_ns: int | None = None) -> None:
        self._set(name=name, size=size, is_dir=is_dir, mtime_ns=mtime_ns,
                  attributes={} if attributes is None else attributes, ctime_ns=ctime_ns, atime_ns=atime_ns)


@runtime_checkable
class File(Protocol):
    """An open file of a :class:`FileSystem`."""

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes from the position (all with -1)."""

    async def write(self, data: bytes) -> int:
        """Write at the position (the end in append mode); the count written."""

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position as :meth:`io.IOBase.seek` does."""

    def tell(self) -> int:
        """The position."""

    async def truncate(self, size: int | None = None) -> int:
        """Cut or extend the file to ``size`` (default: the position)."""

    async def flush(self) -> None:
        """Write the file's buffered data and metadata to the device."""

    async def close(self) -> None:
        """Flush and close the file."""


@runtime_checkable
class FileSystem(Device, Protocol):
    """A hierarchical filesystem over a :class:`Block` device; paths use ``/``."""

    async def open(self, path: str, mode: str = "rb") -> File:
        """Open a file; ``mode`` as :func:`open` (binary only)."""

    async def stat(self, path: str) -> FileStat:
        """Size, type and times of ``path``."""

    async def exists(self, path: str) -> bool:
        """Whether ``path`` names a file or a directory."""

    async def listdir(self, path: str = "/") -> list[str]:
        """Names in the directory, in the filesystem's own order (sort them if order matters)."""

    async def scandir(self, path: str = "/") -> list[FileStat]:
        """The stats of the directory's entries, in :meth:`listdir`'s order."""

    async def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Create a directory; ``parents`` and ``exist_ok`` as :meth:`pathlib.Path.mkdir`."""

    async def remove(self, path: str) -> None:
        """Remove a file."""

    async def rmdir(self, path: str) -> None:
        """Remove an empty directory."""

    async def rename(self, source: str, dest: str) -> None:
        """Rename or move a file or directory."""

    async def set_mtime(self, path: str, mtime_ns: int) -> None:
        """Set the modification time (to the filesystem's resolution)."""

    async def flush(self) -> None:
        """Write every cached change to the device."""


@runtime_checkable
class TLS(Device, Protocol):
    """TLS over any :class:`Flow`."""

    async def client(self, flow: Flow, server_hostname: str) -> Flow:
        """Run a client handshake over ``flow`` and return the encrypted flow."""

    async def server(self, flow: Flow) -> Flow:
        """Run a server handshake over ``flow`` and return the encrypted flow."""

    async def start_server(self, handler: FlowHandler, port: int) -> Server:
        """Accept TLS connections on ``port`` of the device's stack.

        ``handler(reader, writer)`` runs for each flow once its handshake succeeded; a
        flow whose handshake fails is closed and never reaches the handler.

        .. versionadded:: 0.1 (unik-lib-tls)
        """

    async def open_connection(self, host: str, port: int, server_hostname: str | None = None) -> Flow:
        """Connect over the device's stack and run a client handshake.

        ``server_hostname`` is sent as SNI and checked against the certificate
        (default: ``host``).

        .. versionadded:: 0.1 (unik-lib-tls)
        """


#: Device kinds by name: the values allowed for ``kind`` in ``[tool.unik.devices.*]``.
KINDS: dict[str, type[Any]] = {
    "console": Console,
    "monotonic_clock": MonotonicClock,
    "wall_clock": WallClock,
    "sleep": Sleep,
    "entropy": EntropySource,
    "random": Random,
    "network": Network,
    "block": Block,
    "kv_ro": KVRO,
    "kv_rw": KVRW,
    "stack": Stack,
    "fs": FileSystem,
    "tls": TLS,
}


def kind_of(annotation: object) -> str | None:
    """The device kind an annotation names, or ``None`` if it is not a device protocol."""
    for name, proto in KINDS.items():
        if annotation is proto:
            return name
    return None

