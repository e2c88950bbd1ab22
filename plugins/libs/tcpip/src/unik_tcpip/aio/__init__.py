"""asyncio on unik's TCP/IP stack: an event loop whose network methods use :class:`unik_tcpip.stack.TcpipStack`.

:class:`UnikEventLoop` (module path ``unik_tcpip.aio``, in unik-lib-tcpip) is asyncio's
selector event loop with ``create_server``, ``create_connection``,
``create_datagram_endpoint``, ``getaddrinfo`` and ``getnameinfo`` on unik's stack, so
``asyncio.start_server``, ``asyncio.open_connection`` and the libraries built on them
(uvicorn, aiohttp, httpx...) run unchanged.

Installing it: a unik application whose plan has unik-lib-tcpip's stack gets it from its
generated ``main.py``, which runs on this loop and attaches the stack once it is
connected.  By hand::

    from unik_tcpip.aio import UnikEventLoop, run

    async def main() -> None:
        stack = await TcpipStack.connect(network, clock, sleep, random, ipv4="10.0.0.2/24")
        UnikEventLoop.attach_running(stack)       # asyncio's network calls now use it
        server = await asyncio.start_server(handler, None, 8080)
        ...

    run(main())            # asyncio.run(main(), loop_factory=UnikEventLoop) on Python 3.12+
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from unik import runtime

from ..tcp.stacksocket import StackSocket, stack_socket
from .datagram import UdpTransport
from .loop import NoStack, UnikEventLoop
from .server import UnikServer

T = TypeVar("T")

__all__ = ["NoStack", "StackSocket", "UdpTransport", "UnikEventLoop", "UnikServer", "run", "stack_socket"]


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a new :class:`UnikEventLoop` (any Python from 3.10)."""
    return runtime.run(main, UnikEventLoop)
