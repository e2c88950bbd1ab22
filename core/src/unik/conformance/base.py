"""The base of every conformance suite: connect a device, run a check, disconnect it."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from ..errors import DeviceClosed


async def raises(expected: type[BaseException] | tuple[type[BaseException], ...], call: Callable[[], object],
                 what: str) -> BaseException:
    """Call ``call()`` (awaiting what it returns) and return the exception of type ``expected`` it raised."""
    try:
        result = call()
        if inspect.isawaitable(result):
            await result
    except expected as exc:
        return exc
    names = expected.__name__ if isinstance(expected, type) else " or ".join(e.__name__ for e in expected)
    raise AssertionError(f"{what} did not raise {names}")


class DeviceConformance:
    """Checks every device passes; a suite adds its protocol's (subclass it, define :meth:`connect`)."""

    #: The protocol of :mod:`unik.devices` the device must satisfy.
    protocol: ClassVar[type[Any]]
    #: Seconds a single check may take before it fails.
    timeout: ClassVar[float] = 30.0

    async def connect(self) -> Any:
        """Connect the device under test (override: ``return await MyDevice.connect(...)``)."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def connect(self)` returning the device")

    def check(self, body: Callable[[Any], Awaitable[object]]) -> None:
        """Run ``body(device)`` in a new event loop with a connected device, then disconnect it."""

        async def main() -> None:
            device = await self.connect()
            try:
                await body(device)
            finally:
                with contextlib.suppress(DeviceClosed):
                    await device.disconnect()

        asyncio.run(asyncio.wait_for(main(), self.timeout))

    def test_satisfies_the_protocol(self) -> None:
        """The device has every attribute and method of its protocol."""

        async def body(device: Any) -> None:
            assert isinstance(device, self.protocol), f"{device!r} is not a {self.protocol.__name__}"

        self.check(body)

    def test_disconnect_twice(self) -> None:
        """A second ``disconnect`` does nothing, or says the device is closed (typed)."""

        async def body(device: Any) -> None:
            await device.disconnect()
            with contextlib.suppress(DeviceClosed):
                await device.disconnect()

        self.check(body)


class ServerClientConformance(DeviceConformance):
    """A suite whose device under test serves a client device: :meth:`pair` gives both.

    The pair (a named tuple with ``server`` and ``client``) is kept in ``self.pair_``;
    the client is disconnected after each check unless it is the server itself.
    """

    async def pair(self) -> Any:
        """The device under test (``server``), its ``client`` and what the suite needs to reach it."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def pair(self)`")

    async def connect(self) -> Any:
        """The server of :meth:`pair`."""
        self.pair_ = await self.pair()
        return self.pair_.server

    def check(self, body: Callable[[Any], Awaitable[object]]) -> None:
        """As the base's; the client is disconnected too when it is another device."""

        async def with_client(server: Any) -> None:
            try:
                await body(server)
            finally:
                if self.pair_.client is not server:
                    await self.pair_.client.disconnect()

        super().check(with_client)
