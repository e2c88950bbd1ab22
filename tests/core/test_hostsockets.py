"""unik.hostsockets: on a target without a host network the socket module fails at once, saying what to use.

The audit hook cannot be removed, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import asyncio, socket, sys
from unik import runtime
from unik.errors import HostNetworkUnavailable
runtime.refuse_host_sockets("virtio")
"""


def run(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("call", "named", "instead"), [
    ("socket.socket(socket.AF_INET, socket.SOCK_STREAM)", "socket.socket(AF_INET, SOCK_STREAM)",
     "asyncio.open_connection / loop.create_connection"),
    ("socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)", "socket.socket(AF_INET6, SOCK_DGRAM)",
     "loop.create_datagram_endpoint"),
    ("socket.create_connection(('10.0.0.1', 80), timeout=5)", "socket.getaddrinfo('10.0.0.1', 80)",
     "asyncio.open_connection / loop.create_connection rather than socket.create_connection"),
    ("socket.create_server(('', 8080))", "socket.socket(AF_INET, SOCK_STREAM)", "loop.create_server"),
    ("socket.getaddrinfo('example.com', 80)", "socket.getaddrinfo('example.com', 80)", "loop.getaddrinfo"),
    ("socket.gethostbyname('example.com')", "socket.gethostbyname('example.com')", "loop.getaddrinfo"),
    ("socket.getnameinfo(('10.0.0.1', 80), 0)", "socket.getnameinfo", "loop.getnameinfo"),
])
def test_host_sockets_fail_at_once_naming_the_call_and_the_loop_method(call: str, named: str, instead: str) -> None:
    result = run(f"""
        try:
            {call}
        except HostNetworkUnavailable as exc:
            print(exc)
        else:
            sys.exit("not refused")
    """)
    assert result.returncode == 0, result.stderr
    message = result.stdout
    assert named in message and instead in message, message
    assert "the virtio target has no host network" in message and "unik's TCP/IP stack" in message


def test_local_sockets_and_asyncio_itself_still_work() -> None:
    result = run("""
        a, b = socket.socketpair()
        a.send(b"x"); assert b.recv(1) == b"x"
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
        async def main():
            await asyncio.sleep(0)
            return 7
        assert asyncio.run(main()) == 7
        print("ok")
    """)
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_sockets_are_allowed_where_the_target_has_a_host_network() -> None:
    result = subprocess.run([sys.executable, "-c", "import socket; socket.socket(socket.AF_INET).close(); "
                             "from unik import hostsockets; print(hostsockets.refused())"],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "None\n"), result.stderr


def test_refused_where_the_image_leaves_the_idna_codec_out() -> None:
    # VM images leave encodings.idna out (it brings unicodedata), and CPython encodes a host
    # name with it before the audit event: the refusal must still come, not a LookupError.
    blocker = """
        import importlib.abc, sys
        class NoIdna(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name in ("encodings.idna", "stringprep", "unicodedata"):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, NoIdna())
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(blocker) + PRELUDE + textwrap.dedent("""
        for call in (lambda: socket.create_connection(("10.0.0.1", 80), timeout=5),
                     lambda: socket.gethostbyname("example.com")):
            try:
                call()
            except HostNetworkUnavailable as exc:
                print(str(exc).split(":")[0])
        try:
            "bücher.example".encode("idna")
        except UnicodeError as exc:
            print("non-ASCII:", "xn--" in str(exc))
    """)], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines() == [
        "socket.getaddrinfo('10.0.0.1', 80)", "socket.gethostbyname('example.com')", "non-ASCII: True"], result.stderr
