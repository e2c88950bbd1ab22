"""A Linux TAP device as a unik :class:`unik.devices.Network`.

The TAP is opened with ``IFF_TAP | IFF_NO_PI | IFF_VNET_HDR``: every frame crosses
the fd behind a 12-byte virtio-net header that carries checksum and segmentation
offload instructions.  The control plane (``TUNSETIFF``, offloads, bringing the link
up) is a few ``ioctl`` calls here; the data path — draining a batch of frames in one
call, completing partial checksums, sending header and frame with one ``writev`` — is
C (:mod:`unik_fdio._tap`, twin :mod:`unik_fdio._tap_pure` with ``UNIK_PURE=1``).

The link is brought up without an IP address: the host's IP stack has nothing to do
with unik's, which owns the frames.  The unik side gets its own locally administered
MAC, distinct from the kernel side's.

A TAP descriptor opened by someone else (``fd=``: a parent process, unik's spt tender)
is adopted instead of opening one; given its interface name, MTU and a MAC too,
adopting makes no system call.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import struct
import sys
from types import ModuleType
from typing import TYPE_CHECKING

from unik import accel
from unik.devices import Buffer, NetworkStats, Offloads, TxOffload
from unik.errors import DeviceClosed, DeviceError, DeviceUnavailable

__all__ = ["TapNetwork", "backend", "parse_mac", "random_mac"]

#: The data-path functions in use: the C module, or the pure twin.
backend: ModuleType


def _use_backend(module: ModuleType) -> None:
    global backend
    backend = module


accel.twin("unik_fdio._tap", "unik_fdio._tap_pure", _use_backend)

TUN_PATH = "/dev/net/tun"
#: Plain ``--net`` mode words that mean "a TAP named after the device".
_MODE_WORDS = frozenset({"tap", "socket"})
#: Largest frame the TAP hands over (a 64 KiB GSO super-frame), plus its header.
_BUFSIZE = 65536 + 12
_ZERO_HEADER = bytes(12)
# <linux/virtio_net.h> gso_type values the Linux TAP accepts (UFO was removed in 4.14).
_TX_GSO = frozenset({0, 1, 4})


def random_mac() -> bytes:
    """A random locally administered unicast MAC (IEEE 802: bit 1 set, bit 0 clear)."""
    mac = bytearray(os.getrandom(6))
    mac[0] = (mac[0] & 0xFC) | 0x02
    return bytes(mac)


def parse_mac(name: str, mac: str | bytes) -> bytes:
    """``02:00:00:00:00:01`` (or 6 bytes) as 6 bytes; a unicast address or DeviceUnavailable."""
    try:
        raw = mac if isinstance(mac, bytes) else bytes.fromhex(mac.replace(":", "").replace("-", ""))
    except ValueError:
        raw = b""
    if len(raw) != 6 or raw[0] & 1:
        raise DeviceUnavailable(
            f"network device {name!r}: {mac!r} is not a unicast MAC address such as 02:00:00:00:00:01"
        )
    return raw


def _ifreq(name: str, fmt: str = "", *values: int) -> bytes:
    """A ``struct ifreq`` (<linux/if.h>: 16-byte name, 24-byte union) for ``ioctl``."""
    tail = struct.pack(fmt, *values) if fmt else b""
    return struct.pack("16s", name.encode()) + tail.ljust(24, b"\0")


class TapNetwork:
    """A :class:`unik.devices.Network` on a Linux TAP device."""

    KIND = "network"

    def __init__(
        self, name: str, ifname: str, fd: int, mac: bytes, mtu: int, offloads: Offloads,
        io: ModuleType | None = None,
    ) -> None:
        self.name = name
        #: The host interface (``ip link show <ifname>``).
        self.ifname = ifname
        self.mac = mac
        self.mtu = mtu
        self.offloads = offloads
        self.stats = NetworkStats()
        #: Received frames whose partial checksum (NEEDS_CSUM) was completed here.
        self.rx_csum_completed = 0
        self._fd = fd
        self._io = io or backend
        self._waiter: asyncio.Future[None] | None = None
        self._waiter_loop: asyncio.AbstractEventLoop | None = None

    # -- acquiring -----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, name: str, ifname: str | None = None, offload: bool = False, fd: int | None = None,
        mtu: int | None = None, mac: str | bytes | None = None, create: bool = False,
    ) -> TapNetwork:
        """Open the existing TAP ``ifname`` (default: ``name``) and bring it up.

        A missing TAP is refused (one created here would vanish with the application and
        have no address on the host: ``unik run --net DEVICE=auto`` makes a proper one);
        ``create`` creates it instead, for tools and tests.

        ``fd`` adopts a TAP descriptor someone else opened instead (``IFF_TAP | IFF_NO_PI |
        IFF_VNET_HDR`` with a 12-byte header, non-blocking, link up): ``ifname`` and
        ``mtu`` are asked of the kernel when not given, and its offloads are the opener's
        unless ``offload`` asks to negotiate them.  ``mac`` (``02:00:00:00:00:01``) is the
        unik side's address (default: random).
        """
        return cls.open_sync(name, ifname, offload, fd=fd, mtu=mtu, mac=mac, create=create)

    @classmethod
    def open_sync(
        cls, name: str, ifname: str | None = None, offload: bool = False, io: ModuleType | None = None,
        fd: int | None = None, mtu: int | None = None, mac: str | bytes | None = None, create: bool = False,
    ) -> TapNetwork:
        """:meth:`connect` without an event loop (for tools and tests); ``io`` picks a backend."""
        io = io or backend
        address = parse_mac(name, mac) if mac is not None else None
        if fd is not None:
            return cls._adopt(name, ifname, offload, io, fd, mtu, address)
        if ifname is None or ifname in _MODE_WORDS:
            ifname = name
        if not ifname or len(ifname.encode()) >= io.IFNAMSIZ or "/" in ifname or ifname.strip() != ifname:
            raise DeviceUnavailable(
                f"network device {name!r}: {ifname!r} is not a valid interface name "
                f"(1 to {io.IFNAMSIZ - 1} bytes, no '/' or spaces): pass --net {name}=TAP"
            )
        if ifname == "auto":
            raise DeviceUnavailable(f"network device {name!r}: --net {name}=auto is done by `unik run`, which "
                                    f"creates the TAP: run the artifact through it, or give an existing TAP")
        if not create and not os.path.exists(f"/sys/class/net/{ifname}"):
            from unik.hostnet import missing_tap  # the message only

            raise DeviceUnavailable(missing_tap(name, ifname))
        fd = _open_tun(name)
        try:
            ifname = _set_iff(io, fd, name, ifname)
            # Headers are little-endian (virtio 1.0); native on little-endian hosts.
            fcntl.ioctl(fd, io.TUNSETVNETHDRSZ, struct.pack("i", io.VNET_HDR_LEN))
            if sys.byteorder == "big":
                fcntl.ioctl(fd, io.TUNSETVNETLE, struct.pack("i", 1))
            offloads = _negotiate(io, fd) if offload else Offloads()
            if not offload:
                fcntl.ioctl(fd, io.TUNSETOFFLOAD, 0)
            mtu = _link_up(io, name, ifname)
        except OSError as exc:
            os.close(fd)
            raise DeviceUnavailable(f"network device {name!r}: setting up TAP {ifname!r}: {exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        return cls(name, ifname, fd, address or random_mac(), mtu, offloads, io)

    @classmethod
    def _adopt(
        cls, name: str, ifname: str | None, offload: bool, io: ModuleType, fd: int, mtu: int | None,
        mac: bytes | None,
    ) -> TapNetwork:
        """Wrap the open TAP descriptor ``fd``; ask the kernel only what was not given."""
        if fd < 0:
            raise DeviceUnavailable(f"network device {name!r}: {fd} is not a file descriptor")
        try:
            if ifname is None or ifname in _MODE_WORDS:
                out = fcntl.ioctl(fd, io.TUNGETIFF, _ifreq(""))
                ifname = out[:16].split(b"\0", 1)[0].decode()
            offloads = _negotiate(io, fd) if offload else Offloads()
            if mtu is None:
                mtu = _link_up(io, name, ifname)
        except OSError as exc:
            raise DeviceUnavailable(
                f"network device {name!r}: descriptor {fd} is not a usable TAP: {exc.strerror or exc}"
            ) from exc
        if not 68 <= mtu <= 65535:
            raise DeviceUnavailable(f"network device {name!r}: MTU {mtu} is outside 68..65535")
        return cls(name, ifname, fd, mac or random_mac(), mtu, offloads, io)

    # -- the Network protocol ------------------------------------------------------------

    async def read(self, limit: int = 64) -> list[bytes]:
        """Wait for at least one frame, then return up to ``limit`` (one C call drains them)."""
        while True:
            frames = self.read_nowait(limit)
            if frames:
                return frames
            await self._readable()

    async def write(self, frame: Buffer, offload: TxOffload | None = None) -> None:
        """Send one frame; if the TAP queue is full it is dropped (``stats.tx_dropped``)."""
        self.send(frame, offload)

    async def disconnect(self) -> None:
        """Close the TAP fd (the interface disappears unless it is persistent)."""
        self.close()

    # -- the synchronous core ---------------------------------------------------------

    def read_nowait(self, limit: int = 64) -> list[bytes]:
        """Up to ``limit`` frames already queued (maybe none), without waiting."""
        self._check_open()
        if limit < 1:
            raise ValueError("limit must be at least 1")
        frames: list[bytes]
        try:
            frames, malformed, completed = self._io.read_frames(self._fd, limit, _BUFSIZE)
        except OSError as exc:
            self.stats.rx_errors += 1
            raise DeviceError(f"network device {self.name!r}: reading TAP {self.ifname}: {exc.strerror}") from exc
        stats = self.stats
        stats.rx_frames += len(frames)
        stats.rx_bytes += sum(map(len, frames))
        stats.rx_errors += malformed
        self.rx_csum_completed += completed
        return frames

    def send(self, frame: Buffer, offload: TxOffload | None = None) -> bool:
        """Send one frame now; False if the TAP queue was full and it was dropped."""
        self._check_open()
        try:
            header = _ZERO_HEADER if offload is None else self._header(len(frame), offload)
            if len(frame) < 14:
                raise DeviceError(f"a {len(frame)}-byte frame is shorter than an Ethernet header")
        except DeviceError as exc:
            self.stats.tx_errors += 1
            raise DeviceError(f"network device {self.name!r}: {exc}") from None
        try:
            sent: bool = self._io.write_frame(self._fd, header, frame)
        except OSError as exc:
            self.stats.tx_errors += 1
            raise DeviceError(f"network device {self.name!r}: writing TAP {self.ifname}: {exc.strerror}") from exc
        if sent:
            self.stats.tx_frames += 1
            self.stats.tx_bytes += len(frame)
        else:
            self.stats.tx_dropped += 1
        return sent

    def close(self) -> None:
        """Close the TAP fd; waiting readers wake up and get :class:`DeviceClosed`."""
        if self._fd < 0:
            return
        self._wake()
        fd, self._fd = self._fd, -1
        os.close(fd)

    def fileno(self) -> int:
        """Return the TAP file descriptor (``-1`` once closed)."""
        return self._fd

    def __repr__(self) -> str:
        mac = self.mac.hex(":")
        return f"<TapNetwork {self.name} on {self.ifname} mac {mac} mtu {self.mtu}>"

    # -- helpers ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._fd < 0:
            raise DeviceClosed(f"network device {self.name!r} is disconnected")

    async def _readable(self) -> None:
        """Wait until the fd is readable; readers share one ``add_reader`` registration."""
        loop = asyncio.get_running_loop()
        if self._waiter_loop is not loop:  # left over from another (maybe closed) loop
            self._wake()
        if self._waiter is None:
            self._waiter = loop.create_future()
            self._waiter_loop = loop
            loop.add_reader(self._fd, self._wake)
        await asyncio.shield(self._waiter)

    def _wake(self) -> None:
        waiter, loop = self._waiter, self._waiter_loop
        self._waiter = self._waiter_loop = None
        if waiter is None or loop is None:
            return
        if loop.is_closed():
            return
        loop.remove_reader(self._fd)
        if not waiter.done():
            waiter.set_result(None)

    def _header(self, length: int, offload: TxOffload) -> bytes:
        """The virtio-net header asking the host to finish the checksum (and segment)."""
        io = self._io
        if not self.offloads.tx_csum:
            raise DeviceError("transmit offload needs the TAP opened with offload=True")
        gso = offload.gso_type & ~io.VIRTIO_NET_HDR_GSO_ECN
        if gso not in _TX_GSO:
            raise DeviceError(f"gso_type {offload.gso_type} is not supported by the Linux TAP driver")
        if gso and not self.offloads.tso:
            raise DeviceError("segmentation offload (TSO) was not negotiated with the host")
        if offload.csum_start + offload.csum_offset + 2 > length:
            raise DeviceError(
                f"checksum at {offload.csum_start}+{offload.csum_offset} is outside the {length}-byte frame"
            )
        try:
            return struct.pack(
                "<BBHHHHH", io.VIRTIO_NET_HDR_F_NEEDS_CSUM, offload.gso_type, offload.hdr_len,
                offload.gso_size, offload.csum_start, offload.csum_offset, 0,
            )
        except struct.error:
            raise DeviceError(f"{offload} has a field outside the virtio-net header's range") from None


# -- control plane ------------------------------------------------------------------------


def _open_tun(name: str) -> int:
    """Open /dev/net/tun non-blocking, or explain what is missing."""
    try:
        return os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise DeviceUnavailable(
            f"network device {name!r}: {TUN_PATH} does not exist: load the tun module "
            f"(modprobe tun), or give the container the device (docker run --device {TUN_PATH})"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise DeviceUnavailable(
                f"network device {name!r}: the kernel has no TUN/TAP driver: load the tun module (modprobe tun)"
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise DeviceUnavailable(
                f"network device {name!r}: cannot open {TUN_PATH} ({exc.strerror}): "
                f"run as root or with CAP_NET_ADMIN, or make {TUN_PATH} accessible"
            ) from exc
        raise DeviceUnavailable(f"network device {name!r}: cannot open {TUN_PATH}: {exc.strerror}") from exc


def _set_iff(io: ModuleType, fd: int, name: str, ifname: str) -> str:
    """TUNSETIFF: attach ``fd`` to TAP ``ifname`` (created if missing); return its name."""
    flags = io.IFF_TAP | io.IFF_NO_PI | io.IFF_VNET_HDR
    try:
        out = fcntl.ioctl(fd, io.TUNSETIFF, _ifreq(ifname, "H", flags))
    except OSError as exc:
        if exc.errno == errno.EPERM:
            why = (
                f"creating TAP {ifname!r} needs root or CAP_NET_ADMIN; without them, have root "
                f"create a persistent TAP you own: ip tuntap add {ifname} mode tap vnet_hdr user $USER"
            )
        elif exc.errno == errno.EBUSY:
            why = f"TAP {ifname!r} is already in use by another process"
        elif exc.errno == errno.EINVAL:
            why = f"{ifname!r} exists and is not a TAP device (or is a multi-queue TAP)"
        else:
            why = f"TUNSETIFF {ifname!r} failed: {exc.strerror}"
        raise DeviceUnavailable(f"network device {name!r}: {why}") from exc
    return out[:16].split(b"\0", 1)[0].decode()


def _negotiate(io: ModuleType, fd: int) -> Offloads:
    """TUNSETOFFLOAD: ask for checksum and TSO offloads, settling for what the kernel grants."""
    for flags in (io.TUN_F_CSUM | io.TUN_F_TSO4 | io.TUN_F_TSO6, io.TUN_F_CSUM):
        try:
            fcntl.ioctl(fd, io.TUNSETOFFLOAD, flags)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            continue
        tso = bool(flags & io.TUN_F_TSO4)
        # rx_csum stays False: only frames flagged NEEDS_CSUM or DATA_VALID were checked
        # by the host; the others (from a bridge, say) must still be verified.
        return Offloads(tx_csum=True, tso=tso, rx_csum=False, gro=tso)
    fcntl.ioctl(fd, io.TUNSETOFFLOAD, 0)
    return Offloads()


def _link_up(io: ModuleType, name: str, ifname: str) -> int:
    """SIOCSIFFLAGS IFF_UP (no address); return the MTU (SIOCGIFMTU)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        (flags,) = struct.unpack_from("H", fcntl.ioctl(s, io.SIOCGIFFLAGS, _ifreq(ifname)), 16)
        if not flags & io.IFF_UP:
            try:
                fcntl.ioctl(s, io.SIOCSIFFLAGS, _ifreq(ifname, "H", flags | io.IFF_UP))
            except PermissionError as exc:
                raise DeviceUnavailable(
                    f"network device {name!r}: bringing {ifname} up needs CAP_NET_ADMIN: "
                    f"run `ip link set {ifname} up` as root first"
                ) from exc
        (mtu,) = struct.unpack_from("i", fcntl.ioctl(s, io.SIOCGIFMTU, _ifreq(ifname)), 16)
    return int(mtu)


if TYPE_CHECKING:
    from unik.devices import PollableNetwork

    def _declares_the_fast_path(network: TapNetwork) -> PollableNetwork:  # mypy checks the match
        return network
