"""A NIC of the kernel unik runs on as a :class:`unik.devices.Network`: an AF_PACKET TPACKET_V3 ring.

The VM targets' guests read their NIC (virtio-net, Xen's netfront) this way.  The init
brings the interface up without an IP address, so the guest kernel's IP stack never
answers; unik's TCP/IP stack sees every frame through the ring (:mod:`unik_fdio._packet`,
or its twin with ``UNIK_PURE=1``) and sends with ``send(2)``.  A second packet socket with
``PACKET_VNET_HDR`` takes the frames that carry a :class:`unik.devices.TxOffload`: TCP
segments of up to 64 KiB with a partial checksum, which the guest kernel cuts to the
MTU and completes (in software, or on the virtio-net device when it offers TSO), so
unik's stack sends one frame where it would build and send up to 44 (the ``tx_csum``
and ``tso`` offloads).  :class:`PacketNetwork` is a
:class:`unik.devices.PollableNetwork`: the stack polls the ring's descriptor and takes
its frames in batches, the same fast path as :class:`unik_fdio.tap.TapNetwork`.

After a VM snapshot is restored (:data:`unik.lifecycle.RESUMED`) the NIC may carry
another MAC address (each instance of a snapshot has its own, set by the guest's
snapshot agent): :attr:`PacketNetwork.mac` is read again from the interface.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from types import ModuleType
from typing import TYPE_CHECKING

from unik import accel, lifecycle
from unik.devices import Buffer, NetworkStats, Offloads, TxOffload
from unik.errors import DeviceClosed, DeviceError, DeviceUnavailable

backend: ModuleType


def _use_backend(module: ModuleType) -> None:
    global backend
    backend = module


accel.twin("unik_fdio._packet", "unik_fdio._packet_pure", _use_backend)

#: Ring geometry: 64 blocks of 64 KiB (4 MiB), 2 KiB frame slots; a block is handed over
#: after at most 2 ms even when not full, so latency stays low.
BLOCK_SIZE = 1 << 16
BLOCK_COUNT = 64
FRAME_SIZE = 2048
RETIRE_MS = 2
# <linux/if_packet.h> and <linux/socket.h>
SOL_PACKET = 263
PACKET_VNET_HDR = 15
# <linux/virtio_net.h>: struct virtio_net_hdr (10 bytes, the guest's byte order: little-endian here)
VNET_HDR = struct.Struct("<BBHHHH")
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1


def offload_socket(ifname: str) -> socket.socket | None:
    """A packet socket on ``ifname`` that sends frames behind a virtio-net header, or ``None``.

    ``None`` where the kernel refuses ``PACKET_VNET_HDR`` (before Linux 3.13): the
    stack then builds every segment itself.  It receives nothing (protocol 0).
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        sock.bind((ifname, 0))
    except OSError:
        sock.close()
        return None
    return sock


def _nics() -> list[tuple[str, bytes, int]]:
    """Every interface with a hardware address (loopback's is all zeros): name, address, MTU."""
    out = []
    for _, ifname in socket.if_nameindex():
        try:
            hw, mtu = backend.interface(ifname)
        except OSError:
            continue
        if any(bytes(hw)):
            out.append((str(ifname), bytes(hw), int(mtu)))
    return out


def find_interface(name: str, mac: str | None) -> tuple[str, bytes, int]:
    """The interface whose MAC address is ``mac`` (the host sets it per device): name, address, MTU.

    Without a ``mac`` the only NIC there is: a disk image booted by a cloud, whose NIC's
    address the cloud chooses (an image carries a MAC only for several NICs, or when
    ``--net-mac`` was configured).
    """
    nics = _nics()
    seen = ", ".join(f"{ifname}={hw.hex(':')}" for ifname, hw, _ in nics) or "none"
    if mac is None:
        if len(nics) == 1:
            return nics[0]
        raise DeviceUnavailable(f"network device {name!r}: no MAC address was given and there is not exactly one "
                                f"NIC (found: {seen}): the host that boots the image passes --net-mac {name}=MAC "
                                "after -- on the kernel command line (unik run, unik deploy and the engine "
                                "configurations unik writes do; give --net-mac at configure for a disk image)")
    want = bytes.fromhex(mac.replace(":", ""))
    for nic in nics:
        if nic[1] == want:
            return nic
    raise DeviceUnavailable(
        f"network device {name!r}: no NIC with address {mac} (found: {seen}); "
        f"attach one with `unik run --net {name}=TAP`"
    )


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


class PacketNetwork:
    """A NIC seen through a TPACKET_V3 receive ring."""

    def __init__(self, name: str, ifname: str, ring: object, mac: bytes, mtu: int,
                 offload: socket.socket | None = None) -> None:
        self.name = name
        self.ifname = ifname
        self.mac = mac
        self.mtu = mtu
        self.offloads = Offloads(tx_csum=True, tso=True) if offload is not None else Offloads()
        self.stats = NetworkStats()
        self._ring: object | None = ring
        self._offload = offload
        lifecycle.subscribe(lifecycle.RESUMED, self._resumed)

    def _resumed(self) -> None:
        """:data:`unik.lifecycle.RESUMED`: take the interface's MAC address now (the instance's own)."""
        if self._ring is not None:
            hw, _ = backend.interface(self.ifname)
            self.mac = bytes(hw)

    @classmethod
    async def connect(cls, name: str, mac: str | None) -> PacketNetwork:
        """Open the ring on the NIC whose address is ``mac`` (the init brought it up; none: the only NIC).

        The host gives each instance's NICs their own addresses and the guest the same
        ones (``--net-mac DEVICE=MAC`` on the kernel command line, after ``--``).
        """
        ifname, hw, mtu = find_interface(name, mac or None)
        try:
            ring = backend.open(ifname, BLOCK_SIZE, BLOCK_COUNT, FRAME_SIZE, RETIRE_MS)
        except OSError as exc:
            raise DeviceUnavailable(f"network device {name!r}: cannot open {ifname}: {exc}") from exc
        return cls(name, ifname, ring, hw, mtu, offload_socket(ifname))

    def _open(self) -> object:
        if self._ring is None:
            raise DeviceClosed(f"network device {self.name!r} is disconnected")
        return self._ring

    def read_nowait(self, limit: int = 64) -> list[bytes]:
        """Frames already received, at most ``limit`` (maybe none)."""
        ring = self._open()
        frames: list[bytes] = ring.read(limit)  # type: ignore[attr-defined]
        self.stats.rx_frames += len(frames)
        self.stats.rx_bytes += sum(map(len, frames))
        return frames

    async def read(self, limit: int = 64) -> list[bytes]:
        """Wait for at least one frame and return up to ``limit``."""
        loop = asyncio.get_running_loop()
        while True:
            frames = self.read_nowait(limit)
            if frames:
                return frames
            ready: asyncio.Future[None] = loop.create_future()
            fd: int = self._open().fileno()  # type: ignore[attr-defined]
            loop.add_reader(fd, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)

    async def write(self, frame: Buffer, offload: TxOffload | None = None) -> None:
        """Send one frame; a full queue drops it (``stats.tx_dropped``)."""
        self.send(frame, offload)

    def fileno(self) -> int:
        """The ring's socket, readable while frames wait (``-1`` once disconnected)."""
        if self._ring is None:
            return -1
        fd: int = self._ring.fileno()  # type: ignore[attr-defined]
        return fd

    def send(self, frame: Buffer, offload: TxOffload | None = None) -> bool:
        """Send one frame now; ``False`` when the kernel's queue was full and it was dropped."""
        if len(frame) < 14:
            self.stats.tx_errors += 1
            raise DeviceError(f"a {len(frame)}-byte frame is shorter than an Ethernet header")
        try:
            sent = self._open().send(frame) if offload is None else self._send_offloaded(frame, offload)  # type: ignore[attr-defined]
        except BlockingIOError:
            sent = False
        except OSError as exc:
            self.stats.tx_errors += 1
            raise DeviceError(f"network device {self.name!r}: sending on {self.ifname}: {exc}") from exc
        if sent:
            self.stats.tx_frames += 1
            self.stats.tx_bytes += len(frame)
        else:
            self.stats.tx_dropped += 1
        return bool(sent)

    def _send_offloaded(self, frame: Buffer, offload: TxOffload) -> bool:
        """The frame behind its virtio-net header, on the offload socket (one system call, no copy)."""
        self._open()
        if self._offload is None:
            raise DeviceError(f"network device {self.name!r} offers no transmit offloads on {self.ifname}")
        header = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, offload.gso_type, offload.hdr_len, offload.gso_size,
                               offload.csum_start, offload.csum_offset)
        return self._offload.sendmsg([header, frame]) > 0

    def dropped(self) -> int:
        """Update ``stats.rx_dropped`` from the kernel's ring counter and return it."""
        self.stats.rx_dropped += int(self._open().drops())  # type: ignore[attr-defined]
        return self.stats.rx_dropped

    async def disconnect(self) -> None:
        """Close the ring."""
        if self._ring is not None:
            self._ring.close()  # type: ignore[attr-defined]
            self._ring = None
        if self._offload is not None:
            self._offload.close()
            self._offload = None
        lifecycle.unsubscribe(lifecycle.RESUMED, self._resumed)


if TYPE_CHECKING:
    from unik.devices import PollableNetwork

    def _declares_the_fast_path(network: PacketNetwork) -> PollableNetwork:  # mypy checks the match
        return network
