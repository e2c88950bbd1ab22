"""FileBlock and its I/O functions, against both the C module and the pure twin."""

from __future__ import annotations

import asyncio
import errno
import importlib
import importlib.machinery
import os
import resource
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fdio_support import backend_fixture, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unik import accel
from unik.devices import Block
from unik.errors import (
    DeviceClosed,
    DeviceError,
    DeviceUnavailable,
    OutOfRange,
    ReadOnlyDevice,
    UnsupportedOperation,
)
from unik_fdio import block as block_mod
from unik_fdio.block import INLINE_LIMIT, FileBlock

#: The I/O module under test, also installed as the one FileBlock.connect uses.
backend = backend_fixture(block_mod, "unik_fdio._block", "unik_fdio._block_pure")


def make_disk(tmp_path: Path, size: int = 64 * 512, data: bytes | None = None) -> Path:
    path = tmp_path / "disk.img"
    if data is not None:
        path.write_bytes(data)
    else:
        with open(path, "wb") as f:
            f.truncate(size)
    return path


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return make_disk(tmp_path)


def connect(path: Path | str, **kw: Any) -> FileBlock:
    return run(FileBlock.connect("storage", path=str(path), **kw))


# --- backend selection ---------------------------------------------------------------


def test_c_module_is_loaded_without_unik_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    pure_run = accel.pure()  # the whole suite may run with UNIK_PURE=1
    monkeypatch.delenv("UNIK_PURE", raising=False)
    module = accel.load("unik_fdio._block", "unik_fdio._block_pure")
    assert module.__name__ == "unik_fdio._block"
    assert module.__file__ is not None
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    if not pure_run:  # then the module-level choice FileBlock uses by default is C too
        assert block_mod.backend is module


def test_unik_pure_selects_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIK_PURE", "1")
    module = accel.load("unik_fdio._block", "unik_fdio._block_pure")
    assert module.__name__ == "unik_fdio._block_pure"


def test_twins_have_the_same_functions() -> None:
    c = importlib.import_module("unik_fdio._block")
    pure = importlib.import_module("unik_fdio._block_pure")
    public = {n for n in dir(c) if not n.startswith("_")}
    assert public == {"pread_exact", "pread_into", "pwrite_all", "pwritev_all", "punch_hole"}
    assert public <= set(dir(pure))


# --- the raw functions -----------------------------------------------------------------


def test_pread_exact_and_pwrite_all(backend: ModuleType, tmp_path: Path) -> None:
    path = make_disk(tmp_path, data=bytes(range(256)) * 4)
    fd = os.open(path, os.O_RDWR)
    try:
        assert backend.pread_exact(fd, 4, 10) == bytes([10, 11, 12, 13])
        assert backend.pread_exact(fd, 0, 0) == b""
        backend.pwrite_all(fd, memoryview(b"xyz"), 1000)
        assert backend.pread_exact(fd, 5, 999) == bytes([999 % 256]) + b"xyz" + bytes([1003 % 256])
        with pytest.raises(EOFError, match="end of file after 4 of 8 bytes"):
            backend.pread_exact(fd, 8, 1020)
        with pytest.raises(ValueError):
            backend.pread_exact(fd, 1, -1)
        with pytest.raises(ValueError):
            backend.pwrite_all(fd, b"x", -1)
    finally:
        os.close(fd)


def test_pread_into(backend: ModuleType, tmp_path: Path) -> None:
    path = make_disk(tmp_path, data=b"abcdefgh")
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(3)
        backend.pread_into(fd, buf, 2)
        assert buf == b"cde"
        view = memoryview(bytearray(8))
        backend.pread_into(fd, view[4:], 4)
        assert view.tobytes() == b"\0\0\0\0efgh"
        with pytest.raises(EOFError):
            backend.pread_into(fd, bytearray(4), 6)
        with pytest.raises(TypeError):
            backend.pread_into(fd, b"read-only", 0)
    finally:
        os.close(fd)


def test_system_call_errors_are_oserror(backend: ModuleType, tmp_path: Path) -> None:
    path = make_disk(tmp_path, data=b"x" * 16)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as exc:
            backend.pwrite_all(fd, b"y", 0)
        assert exc.value.errno == errno.EBADF
    finally:
        os.close(fd)
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as exc:
            backend.pread_exact(r, 1, 0)
        assert exc.value.errno == errno.ESPIPE
    finally:
        os.close(r)
        os.close(w)


def _in_child(body: Callable[[], str]) -> str:
    """Run ``body()`` in a forked child and return the text it returns."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.write(w, body().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        text = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed"
    return text


@pytest.mark.parametrize("vectored", [False, True])
def test_short_writes_are_resumed(backend: ModuleType, tmp_path: Path, vectored: bool) -> None:
    """Under RLIMIT_FSIZE the kernel writes what fits (a short write), then says EFBIG."""
    path = make_disk(tmp_path, 0)

    def body() -> str:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        fd = os.open(path, os.O_RDWR)
        try:
            if vectored:
                backend.pwritev_all(fd, [b"a" * 600, b"b" * 600], 0)
            else:
                backend.pwrite_all(fd, b"a" * 600 + b"b" * 600, 0)
        except OSError as exc:
            return errno.errorcode[exc.errno or 0]
        return "no error"

    assert _in_child(body) == "EFBIG"
    assert path.read_bytes() == b"a" * 600 + b"b" * 400


def test_pwritev_all_many_buffers(backend: ModuleType, tmp_path: Path) -> None:
    """More buffers than IOV_MAX (1024) and empty ones in between."""
    path = make_disk(tmp_path, size=0)
    buffers: list[bytes | bytearray | memoryview] = [bytes([i % 251]) * (i % 7) for i in range(1500)]
    buffers[3] = bytearray(b"ba")
    buffers[4] = memoryview(b"mv")
    fd = os.open(path, os.O_RDWR)
    try:
        backend.pwritev_all(fd, buffers, 100)
        backend.pwritev_all(fd, [], 0)
    finally:
        os.close(fd)
    expected = b"".join(bytes(b) for b in buffers)
    assert path.read_bytes() == b"\0" * 100 + expected


def test_punch_hole(backend: ModuleType, tmp_path: Path) -> None:
    path = make_disk(tmp_path, data=b"\xff" * 8192)
    fd = os.open(path, os.O_RDWR)
    try:
        backend.punch_hole(fd, 4096, 4096)
        with pytest.raises(ValueError):
            backend.punch_hole(fd, 0, 0)
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert len(data) == 8192 and data[:4096] == b"\xff" * 4096 and data[4096:] == bytes(4096)


# --- connect -------------------------------------------------------------------------


def test_connect_reports_geometry(backend: ModuleType, disk: Path) -> None:
    dev = connect(disk)
    try:
        assert isinstance(dev, Block)
        assert (dev.name, dev.sector_size, dev.sectors, dev.read_only) == ("storage", 512, 64, False)
        assert dev._io is backend
    finally:
        run(dev.disconnect())


def test_path_wins_over_file(backend: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small, big = make_disk(tmp_path / "a", 1024), make_disk(tmp_path / "b", 4096)
    dev = run(FileBlock.connect("storage", path=str(big), file=str(small)))
    assert (dev.path, dev.sectors) == (str(big), 8)
    run(dev.disconnect())
    dev = run(FileBlock.connect("storage", file=str(small)))
    assert (dev.path, dev.sectors) == (str(small), 2)
    run(dev.disconnect())


def test_relative_file_is_relative_to_cwd(
    backend: ModuleType, disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(disk.parent)
    dev = run(FileBlock.connect("storage", file="disk.img"))
    assert dev.sectors == 64
    run(dev.disconnect())


def test_no_file_says_what_to_pass(backend: ModuleType) -> None:
    with pytest.raises(DeviceUnavailable, match="pass --block storage=FILE"):
        run(FileBlock.connect("storage"))


def test_missing_file(backend: ModuleType, tmp_path: Path) -> None:
    missing = tmp_path / "nope.img"
    with pytest.raises(DeviceUnavailable) as exc:
        connect(missing)
    assert str(missing) in str(exc.value) and os.strerror(errno.ENOENT) in str(exc.value)


def test_permission_denied(backend: ModuleType, tmp_path: Path) -> None:
    path = make_disk(tmp_path)
    path.chmod(0o600)
    if os.geteuid() != 0:
        path.chmod(0o400)
        with pytest.raises(DeviceUnavailable) as exc:
            connect(path)
        message = str(exc.value)
    else:  # root ignores permission bits: try as nobody, in a forked child
        message = _as_nobody(lambda: FileBlock.open_sync("storage", path=str(path)))
    assert str(path) in message and os.strerror(errno.EACCES) in message


def _as_nobody(attempt: Callable[[], object]) -> str:
    """Run ``attempt()`` in a child that dropped root; return the DeviceUnavailable text."""

    def body() -> str:
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        try:
            attempt()
        except DeviceUnavailable as exc:
            return str(exc)
        raise AssertionError("no DeviceUnavailable")

    return _in_child(body)


def test_size_must_be_a_multiple_of_the_sector_size(backend: ModuleType, tmp_path: Path) -> None:
    path = make_disk(tmp_path, 1000)
    with pytest.raises(DeviceUnavailable, match=r"1000 bytes, not a multiple of the 512-byte sector size"):
        connect(path)
    path2 = make_disk(tmp_path, 4096 + 2048)
    with pytest.raises(DeviceUnavailable, match="4096-byte"):
        connect(path2, sector_size=4096)


def test_empty_file_directory_and_bad_sector_size(backend: ModuleType, tmp_path: Path) -> None:
    empty = make_disk(tmp_path, 0)
    with pytest.raises(DeviceUnavailable, match="is empty"):
        connect(empty)
    with pytest.raises(DeviceUnavailable, match="not a regular file or block device"):
        connect(tmp_path, read_only=True)
    with pytest.raises(DeviceUnavailable, match="power of two"):
        connect(empty, sector_size=1000)


def test_exclusive_lock(backend: ModuleType, disk: Path) -> None:
    first = connect(disk)
    try:
        with pytest.raises(DeviceUnavailable, match="in use by another process"):
            connect(disk, read_only=True)
    finally:
        run(first.disconnect())
    readers = [connect(disk, read_only=True), connect(disk, read_only=True)]
    with pytest.raises(DeviceUnavailable, match="in use"):
        connect(disk)
    for r in readers:
        run(r.disconnect())
    run(connect(disk).disconnect())


# --- I/O -------------------------------------------------------------------------------


def test_write_read_round_trip(backend: ModuleType, disk: Path) -> None:
    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(disk))
        assert await dev.read(0, 64) == bytes(64 * 512)
        payload = os.urandom(3 * 512)
        await dev.write(5, payload)
        assert await dev.read(5, 3) == payload
        assert await dev.read(6, 1) == payload[512:1024]
        await dev.write(63, bytearray(b"\x01" * 512))
        assert await dev.read(63, 1) == b"\x01" * 512
        await dev.write(0, memoryview(b"\x02" * 512))
        assert await dev.read(0, 0) == b""
        await dev.write(10, b"")
        await dev.flush()
        await dev.disconnect()

    run(go())
    data = disk.read_bytes()
    assert data[:512] == b"\x02" * 512 and data[-512:] == b"\x01" * 512


def test_large_requests_use_a_worker_thread(backend: ModuleType, tmp_path: Path) -> None:
    size = 4 * INLINE_LIMIT
    path = make_disk(tmp_path, size)
    payload = os.urandom(size - 4096)

    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(path), sector_size=4096)
        assert dev.sectors == size // 4096
        await dev.write(1, payload)
        assert await dev.read(1, len(payload) // 4096) == payload
        half = len(payload) // 2
        await dev.writev(0, [b"\xaa" * 4096, payload[:half], payload[half:]])
        assert await dev.read(0, dev.sectors) == b"\xaa" * 4096 + payload
        await dev.disconnect()

    run(go())


def test_writev(backend: ModuleType, disk: Path) -> None:
    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(disk))
        await dev.writev(2, [b"a" * 100, b"b" * 412, b"c" * 512])
        assert await dev.read(2, 2) == b"a" * 100 + b"b" * 412 + b"c" * 512
        with pytest.raises(DeviceError, match="not a multiple"):
            await dev.writev(2, [b"a" * 100])
        with pytest.raises(OutOfRange):
            await dev.writev(63, [b"a" * 1024])
        await dev.disconnect()

    run(go())


def test_partial_sector_write_is_refused(backend: ModuleType, disk: Path) -> None:
    dev = connect(disk)
    with pytest.raises(DeviceError, match="100 bytes is not a multiple of the 512-byte sector size"):
        run(dev.write(0, b"x" * 100))
    with pytest.raises(DeviceError, match="not a multiple"):
        run(dev.write(0, b"x" * 513))
    run(dev.disconnect())
    assert disk.read_bytes() == bytes(64 * 512)


@pytest.mark.parametrize(
    ("sector", "count"), [(64, 1), (63, 2), (-1, 1), (0, 65), (0, -1), (1000, 0)],
)
def test_out_of_range(backend: ModuleType, disk: Path, sector: int, count: int) -> None:
    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(disk))
        with pytest.raises(OutOfRange, match=r"outside 0\.\.63"):
            await dev.read(sector, count)
        if count >= 0:
            with pytest.raises(OutOfRange):
                await dev.write(sector, b"\0" * 512 * count)
        with pytest.raises(OutOfRange):
            await dev.discard(sector, count)
        await dev.disconnect()

    run(go())


def test_read_only(backend: ModuleType, disk: Path) -> None:
    disk.write_bytes(b"\x07" * 64 * 512)

    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(disk), read_only=True)
        assert dev.read_only
        assert await dev.read(3, 1) == b"\x07" * 512
        with pytest.raises(ReadOnlyDevice, match="read-only"):
            await dev.write(0, b"\0" * 512)
        with pytest.raises(ReadOnlyDevice):
            await dev.writev(0, [b"\0" * 512])
        with pytest.raises(ReadOnlyDevice):
            await dev.discard(0, 1)
        await dev.flush()
        await dev.disconnect()

    run(go())
    assert disk.read_bytes() == b"\x07" * 64 * 512


def test_read_only_file_opens_read_only(backend: ModuleType, disk: Path) -> None:
    """A read-only device needs only read permission (O_RDONLY)."""
    disk.chmod(0o444)
    dev = connect(disk, read_only=True)
    assert run(dev.read(0, 1)) == bytes(512)
    run(dev.disconnect())


def test_discard_reads_back_zeros_and_keeps_size(backend: ModuleType, disk: Path) -> None:
    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(disk))
        await dev.write(0, b"\x55" * 64 * 512)
        await dev.discard(8, 16)
        await dev.discard(0, 0)
        data = await dev.read(0, 64)
        assert data == b"\x55" * 8 * 512 + bytes(16 * 512) + b"\x55" * 40 * 512
        await dev.disconnect()

    run(go())
    assert disk.stat().st_size == 64 * 512


def _failing_io(backend: ModuleType, err: int) -> ModuleType:
    """``backend`` with every I/O function failing with ``err``."""

    def fail(*_args: object) -> None:
        raise OSError(err, os.strerror(err))

    names = ("pread_exact", "pread_into", "pwrite_all", "pwritev_all", "punch_hole")
    assert all(hasattr(backend, name) for name in names)
    module = ModuleType("failing_block_io")
    for name in names:
        setattr(module, name, fail)
    return module


@pytest.mark.parametrize("err", [errno.EOPNOTSUPP, errno.ENOSYS])
def test_discard_unsupported(backend: ModuleType, disk: Path, err: int) -> None:
    dev = connect(disk)
    dev._io = _failing_io(backend, err)  # a filesystem without FALLOC_FL_PUNCH_HOLE
    with pytest.raises(UnsupportedOperation, match="cannot punch holes"):
        run(dev.discard(0, 1))
    run(dev.disconnect())


def test_io_errors_become_device_errors(backend: ModuleType, disk: Path) -> None:
    dev = connect(disk)
    dev._io = _failing_io(backend, errno.EIO)
    for op in (dev.read(0, 1), dev.write(0, bytes(512)), dev.writev(0, [bytes(512)]), dev.discard(0, 1)):
        with pytest.raises(DeviceError, match=os.strerror(errno.EIO)) as exc:
            run(op)
        assert not isinstance(exc.value, UnsupportedOperation)
        assert str(disk) in str(exc.value)
    run(dev.disconnect())


def test_full_disk_is_a_device_error(backend: ModuleType, disk: Path) -> None:
    dev = connect(disk)
    dev._io = _failing_io(backend, errno.ENOSPC)
    with pytest.raises(DeviceError, match=os.strerror(errno.ENOSPC)):
        run(dev.write(0, bytes(512)))
    run(dev.disconnect())


def test_file_shrunk_behind_our_back(backend: ModuleType, disk: Path) -> None:
    dev = connect(disk)
    os.truncate(disk, 10 * 512)
    with pytest.raises(DeviceError, match="end of file"):
        run(dev.read(8, 4))
    run(dev.disconnect())


def test_disconnect(backend: ModuleType, disk: Path) -> None:
    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(disk))
        fd = dev.fileno()
        await dev.disconnect()
        await dev.disconnect()  # idempotent
        assert dev.fileno() == -1
        with pytest.raises(OSError):
            os.fstat(fd)
        for op in (dev.read(0, 1), dev.write(0, bytes(512)), dev.writev(0, []), dev.flush(),
                   dev.discard(0, 1)):
            with pytest.raises(DeviceClosed, match="'storage' is disconnected"):
                await op

    run(go())


def test_disconnect_waits_for_requests_in_threads(backend: ModuleType, tmp_path: Path) -> None:
    size = 16 * INLINE_LIMIT
    path = make_disk(tmp_path, size)

    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(path))
        reads = [asyncio.ensure_future(dev.read(0, size // 512)) for _ in range(4)]
        await asyncio.sleep(0)
        await dev.disconnect()
        for r in reads:  # every started read completed on the still-open file
            assert await r == bytes(size)

    run(go())


# --- property: the device behaves like a bytearray ----------------------------------------

_op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 15), st.integers(1, 4), st.integers(0, 255)),
    st.tuples(st.just("discard"), st.integers(0, 15), st.integers(0, 4), st.just(0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=12))
def test_model(backend: ModuleType, tmp_path: Path, ops: list[tuple[str, int, int, int]]) -> None:
    path = tmp_path / "model.img"
    with open(path, "wb") as f:
        f.truncate(16 * 512)
    model = bytearray(16 * 512)

    async def go() -> bytes:
        dev = await FileBlock.connect("m", path=str(path))
        try:
            for op, sector, count, byte in ops:
                in_range = sector + count <= 16
                try:
                    if op == "write":
                        await dev.write(sector, bytes([byte]) * 512 * count)
                    else:
                        await dev.discard(sector, count)
                except OutOfRange:
                    assert not in_range
                    continue
                assert in_range
                model[sector * 512:(sector + count) * 512] = bytes([byte]) * 512 * count
            return await dev.read(0, 16)
        finally:
            await dev.disconnect()

    assert run(go()) == model


@pytest.fixture(autouse=True)
def _no_leaked_fds() -> Iterator[None]:
    before = set(os.listdir("/proc/self/fd"))
    yield
    leaked = set(os.listdir("/proc/self/fd")) - before
    assert not {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")
                and os.readlink(f"/proc/self/fd/{fd}").endswith(".img")}



# --- adopting a descriptor someone else opened (unik's spt tender) ----------------------------


def test_adopt_checks_and_locks_a_descriptor(backend: ModuleType, disk: Path) -> None:
    fd = os.open(disk, os.O_RDWR)
    dev = connect(disk, fd=fd)
    try:
        assert (dev.fileno(), dev.sectors, dev.path) == (fd, 64, str(disk))
        with pytest.raises(DeviceUnavailable, match="in use by another process"):
            connect(disk)  # the adopted descriptor holds the lock
        run(dev.write(3, b"\x07" * 512))
        assert disk.read_bytes()[3 * 512:4 * 512] == b"\x07" * 512
    finally:
        run(dev.disconnect())
    with pytest.raises(OSError):
        os.fstat(fd)  # disconnect closed the adopted descriptor


def test_adopt_with_a_size_makes_no_system_call(
    backend: ModuleType, disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd = os.open(disk, os.O_RDWR)

    def refused(*args: object) -> None:
        raise AssertionError("adopting with size= made a system call")

    for name in ("fstat", "lseek", "open"):
        monkeypatch.setattr(f"{block_mod.__name__}.os.{name}", refused)
    monkeypatch.setattr(f"{block_mod.__name__}.fcntl.flock", refused)
    dev = run(FileBlock.connect("storage", path=str(disk), fd=fd, size=64 * 512, sector_size=4096))
    monkeypatch.undo()
    try:
        assert (dev.sectors, dev.sector_size) == (8, 4096)
        assert run(dev.read(0, 1)) == bytes(4096)
    finally:
        run(dev.disconnect())


def test_adopt_errors(backend: ModuleType, disk: Path, tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="-1 is not a file descriptor"):
        connect(disk, fd=-1)
    with pytest.raises(DeviceUnavailable, match="not a non-zero multiple of the 512-byte"):
        connect(disk, fd=0, size=1000)
    with pytest.raises(DeviceUnavailable, match="is unusable"):
        connect(disk, fd=_unused_fd())
    r, w = os.pipe()
    try:
        with pytest.raises(DeviceUnavailable, match="not a regular file or block device"):
            connect("a pipe", fd=r)
    finally:
        os.close(r)
        os.close(w)


def _unused_fd() -> int:
    fd = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1
    with pytest.raises(OSError):
        os.fstat(fd)
    return fd


def test_inline_limit_keeps_large_requests_on_the_loop_thread(backend: ModuleType, tmp_path: Path) -> None:
    path = make_disk(tmp_path, 4 * INLINE_LIMIT)
    payload = bytes(range(256)) * (2 * INLINE_LIMIT // 256)

    async def go() -> None:
        dev = await FileBlock.connect("storage", path=str(path), inline_limit=2**62)
        loop = asyncio.get_running_loop()

        def no_threads(*args: object) -> None:
            raise AssertionError("a request went to a worker thread")

        loop.run_in_executor = no_threads  # type: ignore[method-assign,assignment]
        await dev.write(0, payload)
        assert await dev.read(0, len(payload) // 512) == payload
        await dev.flush()
        await dev.disconnect()

    run(go())
