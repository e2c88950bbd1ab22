"""examples/http as production code: streamed bodies under a memory limit, HEAD, ranges, keep-alive, traversal.

The artifact is built once for the unix target on the host's sockets, with a file larger
than the memory limit the server then runs under (RLIMIT_AS): it must serve it whole,
byte for byte, with its peak RSS barely above its resting RSS.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import UNIK
from example_support import REPO, copy_example
from host_tools import require

#: The server's address-space limit, and a file larger than it.
LIMIT = 160 << 20
BIG = 192 << 20
PAGE = 4096
#: What streaming may add to the server's resting RSS while it sends BIG bytes.
RSS_GROWTH = 8 << 20


def _big_file(path: Path) -> str:
    """BIG bytes whose every 4 KiB page starts with its own offset (a misplaced chunk shows); its SHA-256."""
    h = hashlib.sha256()
    with path.open("wb") as f:
        for first in range(0, BIG, 1 << 20):
            block = b"".join(struct.pack(">Q", off).rjust(16, b"-").ljust(PAGE, b"\0")
                             for off in range(first, first + (1 << 20), PAGE))
            f.write(block)
            h.update(block)
    return h.hexdigest()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` size field (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


class Server:
    """The running artifact: its process, port and the digest of the big file."""

    def __init__(self, proc: subprocess.Popen[str], port: int, digest: str) -> None:
        self.proc, self.port, self.digest = proc, port, digest

    def exchange(self, request: bytes) -> bytes:
        """Send raw request bytes on one connection; everything that comes back until the server closes it."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(request)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """examples/http on the unix target with the big file baked in, running under RLIMIT_AS."""
    require("curl")
    tmp = tmp_path_factory.mktemp("http-stream")
    app = copy_example("http", tmp)
    digest = _big_file(app / "htdocs" / "big.bin")
    (app / "htdocs" / "docs").mkdir()
    (app / "htdocs" / "docs" / "index.html").write_text("<p>docs</p>\n")
    (app / "htdocs" / "a b.txt").write_text("spaced\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp / "cache"))
    for step in (["configure", "-t", "unix", "--net=socket", "--ipv4=127.0.0.1/8"], ["build"]):
        subprocess.run([UNIK, *step], cwd=app, env=env, check=True, capture_output=True, timeout=300)
    port = _free_port()
    pyz = app / "dist" / "http-unix" / "http.pyz"
    proc = subprocess.Popen([sys.executable, str(pyz), "--port", str(port)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_limit_memory)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first run unpacks the artifact (the big file too) first
        assert line == f"serving on 127.0.0.1:{port}\n", line + proc.stdout.read() if proc.poll() is not None else line
        yield Server(proc, port, digest)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if (tmp / "cache").exists():
            shutil.rmtree(tmp / "cache")
        os.unlink(app / "htdocs" / "big.bin")


def test_a_file_larger_than_the_memory_limit_is_served_whole_with_flat_memory(server: Server, tmp_path: Path) -> None:
    assert BIG > LIMIT
    resting = _status(server.proc.pid, "VmRSS")
    out = tmp_path / "big.bin"
    for _ in range(2):
        start = time.monotonic()
        done = subprocess.run(["curl", "-sS", "--max-time", "120", "-o", str(out), "-w",
                               "%{http_code} %{size_download}", f"http://127.0.0.1:{server.port}/big.bin"],
                              capture_output=True, text=True)
        elapsed = time.monotonic() - start
        assert done.stdout == f"200 {BIG}", done.stdout + done.stderr
    peak = _status(server.proc.pid, "VmHWM")
    assert server.proc.poll() is None
    assert peak - resting < RSS_GROWTH, (f"peak RSS {peak >> 20} MiB, resting {resting >> 20} MiB "
                                         f"({BIG / elapsed / 1e6:.0f} MB/s)")
    h = hashlib.sha256()  # outside the timed download
    with out.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    assert h.hexdigest() == server.digest


def test_head_gives_the_length_and_no_body(server: Server) -> None:
    got = server.exchange(b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and f"Content-Length: {BIG}\r\n".encode() in head + b"\r\n"
    assert b"Accept-Ranges: bytes" in head and body == b""


def test_byte_ranges_resume_a_download(server: Server) -> None:
    offset = 5 * PAGE
    got = server.exchange(f"GET /big.bin HTTP/1.1\r\nRange: bytes={offset}-{offset + 15}\r\nConnection: close\r\n\r\n"
                          .encode())
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206 Partial Content")
    assert f"Content-Range: bytes {offset}-{offset + 15}/{BIG}".encode() in head
    assert body == struct.pack(">Q", offset).rjust(16, b"-")
    tail = server.exchange(b"GET /big.bin HTTP/1.1\r\nRange: bytes=-3\r\nConnection: close\r\n\r\n")
    assert tail.endswith(b"\r\n\r\n\0\0\0") and b"Content-Length: 3\r\n" in tail
    beyond = server.exchange(f"GET /big.bin HTTP/1.1\r\nRange: bytes={BIG}-\r\nConnection: close\r\n\r\n".encode())
    assert beyond.startswith(b"HTTP/1.1 416 ") and f"Content-Range: bytes */{BIG}".encode() in beyond
    several = server.exchange(b"HEAD /big.bin HTTP/1.1\r\nRange: bytes=0-1,5-6\r\nConnection: close\r\n\r\n")
    assert several.startswith(b"HTTP/1.1 200 OK")  # several ranges: the whole file


@pytest.mark.parametrize("target", ["/../pyproject.toml", "/%2e%2e/pyproject.toml", "/docs/../../main.py",
                                    "/..%2fmain.py", "/%2e%2e%5cmain.py", "/main.py", "/%ff"])
def test_nothing_outside_the_store_is_reachable(server: Server, target: str) -> None:
    got = server.exchange(f"GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    assert got.startswith(b"HTTP/1.1 404 Not Found\r\n") and got.endswith(b"\r\n\r\nnot found\n"), got[:200]


def test_keep_alive_serves_several_requests_on_one_connection(server: Server) -> None:
    got = server.exchange(b"GET / HTTP/1.1\r\n\r\nHEAD /docs/ HTTP/1.1\r\n\r\nGET /a%20b.txt HTTP/1.1\r\n"
                          b"Connection: close\r\n\r\n")
    answers = got.split(b"HTTP/1.1 ")[1:]
    assert [a[:6] for a in answers] == [b"200 OK"] * 3, got
    assert b"Connection: keep-alive" in answers[0] and b"Connection: keep-alive" in answers[1]
    assert answers[1].endswith(b"\r\n\r\n") and answers[2].endswith(b"\r\n\r\nspaced\n")
    # HTTP/1.0 closes unless asked; a request with a body closes after its answer
    assert b"Connection: close" in server.exchange(b"GET / HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in server.exchange(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")


def test_bad_requests_get_their_status(server: Server) -> None:
    post = server.exchange(b"POST / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 405 Method Not Allowed") and b"Allow: GET, HEAD\r\n" in post
    assert server.exchange(b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    assert server.exchange(b"GET / HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    assert server.exchange(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_https_handles_requests_with_the_same_code() -> None:
    def handler(name: str) -> str:
        text = (REPO / "examples" / name / "src" / f"{name}_app" / "__init__.py").read_text()
        body = text[text.index("\nimport asyncio"):text.index("async def start(")]
        return body.replace("KVRO, TLS, Console", "KVRO, Console")

    assert handler("https") == handler("http")
