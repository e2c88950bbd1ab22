"""Helpers of the virtio tests: their applications, a frame responder, Firecracker's schema.

Running `unik` and building are :mod:`vm_support`'s, shared with tests/xen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vm_support import build_for

#: An application that reports its entropy source and exits with a chosen status, or crashes.
STATUS_APP = '''\
"""Exit with --status after reading from the entropy device; --crash raises instead."""

from unik.devices import Console, EntropySource


async def start(console: Console, entropy: EntropySource, *, status: int = 0, crash: bool = False) -> int:
    data = await entropy.read(16)
    console.log(f"entropy {entropy.name} {len(data)}")
    if crash:
        raise RuntimeError("deliberate failure")
    return status
'''


#: An application that writes two sectors, or (after a reboot) reads them back.
DISK_APP = '''\
"""Write sectors 5-6 with --phase write; check them with --phase read."""

from unik.devices import Block, Console

PATTERN = bytes(range(256)) * 4


async def start(console: Console, storage: Block, *, phase: str = "write") -> int:
    console.log(f"disk {storage.sectors} sectors of {storage.sector_size} bytes")
    if phase == "write":
        await storage.write(5, PATTERN)
        await storage.flush()
        console.log("wrote")
        return 0
    same = await storage.read(5, 2) == PATTERN
    console.log("match" if same else "mismatch")
    return 0 if same else 3
'''


#: An application that sends a frame of ethertype 0x88b5 on its NIC until a reply comes.
PING_APP = '''\
"""Send b"ping" frames (ethertype 0x88b5) on the network device until a reply arrives."""

import asyncio

from unik.devices import Console, Network

ETHERTYPE = b"\\x88\\xb5"


async def start(console: Console, uplink: Network) -> int:
    console.log(f"nic {uplink.mac.hex(':')} mtu {uplink.mtu}")
    frame = b"\\xff" * 6 + uplink.mac + ETHERTYPE + b"ping".ljust(46, b"\\0")
    for _ in range(40):
        await uplink.write(frame)
        try:
            frames = await asyncio.wait_for(uplink.read(), 0.5)
        except asyncio.TimeoutError:
            continue
        for f in frames:
            if f[12:14] == ETHERTYPE and f[0:6] == uplink.mac:
                console.log("reply " + f[14:18].decode())
                console.log(f"counters rx {uplink.stats.rx_frames} tx {uplink.stats.tx_frames}")
                return 0
    console.log("no reply")
    return 3
'''

#: Run in the test's namespace: answer one 0x88b5 frame on a TAP with b"pong".
RESPONDER = '''\
import socket, sys, time
tap = sys.argv[1]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
s.bind((tap, 0x88B5))
s.settimeout(1.0)
deadline = time.monotonic() + 120
print("ready", flush=True)
while time.monotonic() < deadline:
    try:
        frame = s.recv(2048)
    except socket.timeout:
        continue
    if frame[14:18] == b"ping":
        s.send(frame[6:12] + b"\\x02\\x00\\x00\\x00\\x00\\x01" + frame[12:14] + b"pong".ljust(46, b"\\0"))
        print("answered", flush=True)
        break
'''


def build(root: Path, *configure_args: str) -> Path:
    """Configure for virtio and build; the artifact directory."""
    return build_for("virtio", root, *configure_args)


#: Firecracker's VM configuration file, as its API specification (firecracker.yaml) documents
#: it: each section's fields with their types, the required ones marked.
FIRECRACKER_SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "boot-source": {"kernel_image_path": (str, True), "initrd_path": (str, False), "boot_args": (str, False)},
    "drives": {"drive_id": (str, True), "is_root_device": (bool, True), "path_on_host": (str, False),
               "is_read_only": (bool, False), "partuuid": (str, False), "cache_type": (str, False),
               "io_engine": (str, False), "rate_limiter": (dict, False), "socket": (str, False)},
    "network-interfaces": {"iface_id": (str, True), "host_dev_name": (str, True), "guest_mac": (str, False),
                           "rx_rate_limiter": (dict, False), "tx_rate_limiter": (dict, False)},
    "machine-config": {"vcpu_count": (int, True), "mem_size_mib": (int, True), "smt": (bool, False),
                       "track_dirty_pages": (bool, False), "cpu_template": (str, False), "huge_pages": (str, False)},
    "entropy": {"rate_limiter": (dict, False)},
}
FIRECRACKER_SECTIONS = {*FIRECRACKER_SCHEMA, "logger", "metrics", "vsock", "balloon", "mmds-config", "cpu-config"}


def validate_firecracker(config: dict[str, Any]) -> None:
    """Raise AssertionError unless ``config`` fits Firecracker's documented configuration."""
    assert set(config) <= FIRECRACKER_SECTIONS, set(config) - FIRECRACKER_SECTIONS
    assert {"boot-source", "machine-config"} <= set(config)
    for section, fields in FIRECRACKER_SCHEMA.items():
        if section not in config:
            continue
        items = config[section] if section in ("drives", "network-interfaces") else [config[section]]
        assert isinstance(items, list)
        for item in items:
            assert set(item) <= set(fields), (section, set(item) - set(fields))
            for name, (kind, required) in fields.items():
                assert name in item or not required, (section, name)
                if name in item:
                    assert isinstance(item[name], kind), (section, name, item[name])
    assert 1 <= config["machine-config"]["vcpu_count"] <= 32
    for drive in config.get("drives", []):
        assert drive.get("cache_type", "Unsafe") in ("Unsafe", "Writeback")
    ids = [d["drive_id"] for d in config.get("drives", [])]
    ids += [n["iface_id"] for n in config.get("network-interfaces", [])]
    assert len(ids) == len(set(ids))
