"""VM snapshots, inside the guest: saved once the application serves, a new instance when restored.

The host asks for a snapshot by booting the image with ``unik_snapshot=1`` on the kernel
command line (the init passes ``UNIK_SNAPSHOT=1`` to Python) and COM2 (``/dev/ttyS1``)
connected to a socket it holds (:mod:`unik_vmimage.snapshot`).  Without it this module
does nothing.  The VM targets' generated ``main.py`` imports it first.

When the application serves (:data:`unik.lifecycle.READY`: its first listening socket):

1. the event loop runs a few more turns, so that what the application does right after
   it listens (print its address) is done;
2. :data:`~unik.lifecycle.BEFORE_SNAPSHOT` is announced and awaited (a FAT filesystem
   writes its dirty sectors back, a disk is flushed) and the kernel's buffers are synced:
   the snapshot holds no write the disk has not;
3. ``unik-ready`` goes to the host on COM2 and the process *blocks* reading COM2.  The
   host stops the VM there and saves its memory.  Nothing of the application runs between
   its readiness and the save.

A restore is a new QEMU process on the saved memory, which resumes inside that read.  Its
host writes one line, ``resume GENERATION TIME_NS SEED OLD-MAC=NEW-MAC...``, and the read
returns only then: a restore cannot go unnoticed (nor be mistaken for a pause, after which
nobody writes), and nothing of the application runs before it is handled:

* the 32 fresh bytes of ``SEED`` (the host's ``os.urandom``) are credited to the guest
  kernel's pool and its CSPRNG is reseeded (``RNDADDENTROPY``, ``RNDRESEEDCRNG``) — QEMU's
  VM generation ID device, when the machine has one, made the kernel reseed already —
  and OpenSSL's and the ``random`` module's generators are seeded again from it;
* the wall clock is stepped to the host's time ``TIME_NS`` (the memory remembers the
  moment it was saved); the monotonic clock goes on from where the snapshot left it
  (QEMU migrates the guest's clock), never backwards;
* each NIC whose address is ``OLD-MAC`` takes ``NEW-MAC``, this instance's own
  (``SIOCSIFHWADDR``: the virtio-net device follows the guest's choice);
* :data:`~unik.lifecycle.RESUMED` is announced and awaited (:func:`unik.lifecycle.resumed`
  holds the generation and the MACs): Fortuna starts a new generation and reseeds from
  its sources, the TCP/IP stack takes the new MAC, drops its ARP and NDP caches and takes
  a new DHCP lease, a disk drops the kernel's cache of it, a FAT filesystem reads it anew.

Last, ``unik-resumed GENERATION`` tells the host the application runs again.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import sys
import termios
import time

from unik import lifecycle

#: Python's environment says the VM was booted to be snapshotted (from ``unik_snapshot=1``).
ENV = "UNIK_SNAPSHOT"
#: The host's channel: the VM's second serial port.
CHANNEL = "/dev/ttyS1"
READY_LINE = b"unik-ready\n"
RESUMED_LINE = "unik-resumed {generation}\n"
#: Turns of the event loop given to the application after it listens, before the snapshot.
SETTLE_TURNS = 8
SEED_BYTES = 32
# <linux/random.h>, <linux/sockios.h>, <linux/if_arp.h>
RNDADDENTROPY = 0x40085203
RNDRESEEDCRNG = 0x5207
SIOCGIFHWADDR = 0x8927
SIOCSIFHWADDR = 0x8924
ARPHRD_ETHER = 1


class ResumeMessage:
    """The host's ``resume`` line, parsed (a ``ValueError`` says what is wrong with it)."""

    __slots__ = ("generation", "macs", "seed", "time_ns")

    def __init__(self, line: str) -> None:
        words = line.split()
        if len(words) < 4 or words[0] != "resume":
            raise ValueError(f"not a resume line: {line.strip()!r}")
        self.generation = int(words[1])
        self.time_ns = int(words[2])
        self.seed = bytes.fromhex(words[3])
        if self.generation < 1 or self.time_ns <= 0 or len(self.seed) != SEED_BYTES:
            raise ValueError(f"bad resume line: {line.strip()!r}")
        self.macs: dict[str, str] = {}
        for pair in words[4:]:
            old, sep, new = pair.lower().partition("=")
            if not sep or len(_mac_bytes(old)) != 6 or len(_mac_bytes(new)) != 6:
                raise ValueError(f"bad MAC pair {pair!r} in the resume line")
            self.macs[old] = new


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def requested() -> bool:
    """Whether this VM was booted to be snapshotted."""
    return os.environ.get(ENV) == "1"


def _raw(fd: int) -> None:
    """COM2 as a raw 8-bit line: no echo, no line editing, no translation."""
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag
    attrs[1] = 0  # oflag
    attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
    attrs[3] = 0  # lflag
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _read_line(fd: int) -> str:
    """One line from the host (blocking: the VM is saved, and later restored, inside this read)."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 256)
        if not chunk:
            raise OSError(f"{CHANNEL} closed before the host's line")
        data += chunk
    return data.decode("ascii", "replace")


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    termios.tcdrain(fd)


def reseed_kernel(seed: bytes) -> None:
    """Credit ``seed`` to the guest kernel's pool and reseed its CSPRNG now."""
    fd = os.open("/dev/urandom", os.O_WRONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, RNDADDENTROPY, struct.pack("ii", len(seed) * 8, len(seed)) + seed)
        fcntl.ioctl(fd, RNDRESEEDCRNG)
    finally:
        os.close(fd)


def step_wall_clock(time_ns: int) -> None:
    """Set ``CLOCK_REALTIME`` to ``time_ns`` (the host's time as it restored the VM)."""
    time.clock_settime_ns(time.CLOCK_REALTIME, time_ns)


def set_macs(macs: dict[str, str]) -> list[str]:
    """Give each interface whose address is a key of ``macs`` the value; the interfaces changed."""
    changed: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for _, ifname in socket.if_nameindex():
            name = ifname.encode()[:15]
            got = fcntl.ioctl(s, SIOCGIFHWADDR, struct.pack("16sH14s", name, 0, b""))
            current = got[18:24].hex(":")
            new = macs.get(current)
            if new is None or new == current:
                continue
            fcntl.ioctl(s, SIOCSIFHWADDR, struct.pack("16sH14s", name, ARPHRD_ETHER, _mac_bytes(new)))
            changed.append(ifname)
    return changed


async def checkpoint() -> None:
    """Settle, write back, tell the host, wait to be restored, renew (the module's docstring)."""
    for _ in range(SETTLE_TURNS):
        await asyncio.sleep(0)
    await lifecycle.announce_and_wait(lifecycle.BEFORE_SNAPSHOT)
    os.sync()
    fd = os.open(CHANNEL, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _raw(fd)
        _write(fd, READY_LINE)
        message = ResumeMessage(_read_line(fd))  # the snapshot is taken here
        reseed_kernel(message.seed)
        lifecycle.renew_generators()
        step_wall_clock(message.time_ns)
        set_macs(message.macs)
        await lifecycle.announce_resumed(lifecycle.Resume(message.generation, message.macs))
        _write(fd, RESUMED_LINE.format(generation=message.generation).encode())
    finally:
        os.close(fd)


def _checkpoint_done(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        print(f"unik: the snapshot agent failed: {task.exception()!r}", file=sys.stderr, flush=True)


_tasks: list[asyncio.Task[None]] = []


def _on_ready() -> None:
    """:data:`unik.lifecycle.READY`: start the checkpoint when the VM was booted for a snapshot."""
    if not requested():
        return
    task = asyncio.get_running_loop().create_task(checkpoint())
    task.add_done_callback(_checkpoint_done)
    _tasks.append(task)  # a task nobody references may be collected


lifecycle.subscribe(lifecycle.READY, _on_ready)
