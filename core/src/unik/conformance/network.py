"""Conformance of ``Network``: Ethernet frames both ways between the device and a peer."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Protocol

from ..devices import Network, NetworkStats, Offloads
from ..errors import DeviceClosed
from .base import DeviceConformance, raises

#: IEEE's local experimental EtherType: frames of the suite, told apart from the host's own traffic.
ETHERTYPE = b"\x88\xb5"
BROADCAST = b"\xff" * 6


class NetworkPeer(Protocol):
    """The other end of the device's wire (an AF_PACKET socket on the host side of a TAP, a socket pair...)."""

    def send(self, frame: bytes) -> None:
        """Put one frame on the wire towards the device."""

    def recv(self, timeout: float) -> bytes | None:
        """The next frame the device sent, or ``None`` after ``timeout`` seconds."""

    def close(self) -> None:
        """Release the peer."""


class NetworkConformance(DeviceConformance):
    """Frames written reach the peer and the peer's reach :meth:`read`, counted; a closed device says so.

    Define :meth:`pair`: the device under test and its :class:`NetworkPeer`.
    """

    protocol = Network
    #: Seconds to wait for a frame on either side.
    frame_timeout = 5.0

    async def pair(self) -> tuple[Any, NetworkPeer]:
        """The device under test, connected, and the peer on its wire."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def pair(self)`")

    async def connect(self) -> Any:
        """The device of :meth:`pair` (its peer is kept in ``self.peer``)."""
        device, self.peer = await self.pair()
        return device

    def check(self, body: Any) -> None:
        """As the base's, closing the peer afterwards."""
        try:
            super().check(body)
        finally:
            peer = getattr(self, "peer", None)
            if peer is not None:
                peer.close()

    def test_identity(self) -> None:
        """Identity."""

        async def body(nic: Any) -> None:
            assert isinstance(nic.name, str)
            assert isinstance(nic.mac, bytes) and len(nic.mac) == 6 and not nic.mac[0] & 1  # unicast
            assert nic.mtu >= 576
            assert isinstance(nic.offloads, Offloads) and isinstance(nic.stats, NetworkStats)

        self.check(body)

    def test_frames_reach_the_peer(self) -> None:
        """Frames reach the peer."""

        async def body(nic: Any) -> None:
            before = nic.stats.tx_frames
            marks = [os.urandom(8) for _ in range(5)]
            for mark in marks:
                await nic.write(BROADCAST + nic.mac + ETHERTYPE + mark.ljust(46, b"\0"))
            got: list[bytes] = []
            loop = asyncio.get_running_loop()
            for _ in range(200):  # bounded: the host may send frames of its own
                frame = await loop.run_in_executor(None, self.peer.recv, self.frame_timeout)
                if frame is None:
                    break
                if frame[12:14] == ETHERTYPE:
                    got.append(frame[14:22])
                if len(got) == len(marks):
                    break
            assert got == marks, "the peer did not receive the frames written, in order"
            assert nic.stats.tx_frames - before >= len(marks)

        self.check(body)

    def test_frames_from_the_peer_are_read(self) -> None:
        """Frames from the peer are read."""

        async def body(nic: Any) -> None:
            marks = [os.urandom(8) for _ in range(5)]
            for mark in marks:
                self.peer.send(nic.mac + b"\x02\x00\x00\x00\x00\x01" + ETHERTYPE + mark.ljust(46, b"\0"))
            got: list[bytes] = []
            for _ in range(200):
                batch = await asyncio.wait_for(nic.read(limit=4), self.frame_timeout)
                assert 1 <= len(batch) <= 4
                got += [f[14:22] for f in batch if f[12:14] == ETHERTYPE]
                if len(got) >= len(marks):
                    break
            assert got == marks, "read did not return the peer's frames, in order"
            assert nic.stats.rx_frames >= len(marks)

        self.check(body)

    def test_disconnected_device_raises_device_closed(self) -> None:
        """Disconnected device raises device closed."""

        async def body(nic: Any) -> None:
            await nic.disconnect()
            frame = BROADCAST + nic.mac + ETHERTYPE + bytes(46)
            await raises(DeviceClosed, lambda: nic.write(frame), "write on a disconnected device")
            await raises(DeviceClosed, lambda: asyncio.wait_for(nic.read(), 2), "read on a disconnected device")

        self.check(body)
