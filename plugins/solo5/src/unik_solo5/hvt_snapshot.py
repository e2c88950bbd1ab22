"""Pre-initialised hvt unikernels on the host: ``unik build`` saves the snapshot, ``unik run`` restores it.

``unik build -t hvt`` boots the ELF once under ``unik-hvt --save-snapshot`` (the guest's
side: :mod:`unik_solo5.hvt_preinit`): CPython starts and imports the application and unik,
and the monitor saves the guest at its snapshot point into ``<name>.snap`` beside the ELF,
with ``<name>.snap.json``, the record of what it is bound to (the ELF's digest and GNU build
ID, the monitor's build ID, ``--mem``).  ``unik run -t hvt`` gives ``unik-hvt --snapshot``:
the monitor checks the binding itself (the snapshot's header: the ELF's build ID and size,
its own build ID, ``--mem``) and the file's checksum, and boots cold saying why when any of
it differs; ``--no-snapshot`` boots cold.

The snapshot is made with the ``--mem`` the unikernel was configured with (``unik configure -t
hvt --mem 512M``; 256 MiB by default), which ``unik run`` then gives: a run with more restores
it (the stack stays at the top of the snapshot's memory, the heap takes the rest), one with
less boots cold, saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from unik.errors import BuildError

#: ``struct snap_header``'s start (hvt/snapshot.h): magic, version, header size, the binding
#: (ELF build ID, its length, the monitor's build ID length, the monitor's build ID, ELF size,
#: memory), runs, pages, data offset, checksum.
HEADER = struct.Struct("<8sII32sII32sQQQQQQ")
MAGIC = b"UNIKSNP1"
#: The ``--mem`` (MiB) of the snapshot ``unik build`` makes when none is configured: ``unik run``'s default.
MEM_MIB = 256
#: The pre-initialising boot's time limit (seconds).
TIMEOUT = 300


class NotPreinitialised(Exception):
    """The host's KVM could not run the pre-initialising boot (the unikernel is not at fault).

    The build goes on without a snapshot, and ``unik run`` boots cold.
    """


@dataclass(frozen=True)
class SnapshotHeader:
    """What a snapshot file says it is of, and its size."""

    elf_build_id: str
    monitor_build_id: str
    elf_size: int
    mem_mib: int
    pages: int
    bytes: int


def snapshot_file(elf: Path) -> Path:
    """Where the snapshot of the unikernel ``elf`` lives: beside it, ``<name>.snap``."""
    return elf.with_suffix(".snap")


def record_file(elf: Path) -> Path:
    """The snapshot's record: ``<name>.snap.json``."""
    return elf.with_suffix(".snap.json")


def read_header(path: Path) -> SnapshotHeader:
    """The header of the snapshot at ``path`` (a ``ValueError`` when it is not one)."""
    with open(path, "rb") as f:
        raw = f.read(HEADER.size)
    if len(raw) < HEADER.size or raw[:8] != MAGIC:
        raise ValueError(f"{path} is not an hvt snapshot")
    (_, _, _, elf_id, elf_len, mon_len, mon_id, elf_size, mem, _, pages, _, _) = HEADER.unpack(raw)
    return SnapshotHeader(elf_id[:elf_len].hex(), mon_id[:mon_len].hex(), elf_size, mem >> 20, pages,
                          path.stat().st_size)


def kvm_missing() -> str | None:
    """Why this host cannot boot the unikernel to pre-initialise it (``None``: /dev/kvm opens read-write)."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as exc:
        return f"/dev/kvm: {exc.strerror}"
    return None


def save(monitor: Path, elf: Path, mem_mib: int = MEM_MIB) -> dict[str, object]:
    """Boot ``elf`` with ``mem_mib`` MiB to its snapshot point under ``monitor`` and save it (:func:`snapshot_file`).

    Returns its record, also written to :func:`record_file`.  A boot that fails is a :class:`BuildError`
    carrying the guest's last lines (an import that fails at build time would fail every run), unless the
    monitor says KVM failed it (a crash or a KVM error, status 255): :class:`NotPreinitialised`.
    """
    out, record = snapshot_file(elf), record_file(elf)
    partial = out.with_name(out.name + ".partial")
    for stale in (out, record):
        stale.unlink(missing_ok=True)
    start = time.monotonic()
    try:
        proc = subprocess.run([str(monitor), "--mem", str(mem_mib), "--save-snapshot", str(partial), "--", str(elf)],
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        partial.unlink(missing_ok=True)
        raise BuildError(f"pre-initialising {elf.name} did not reach its snapshot point in {TIMEOUT} s") from exc
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        lines = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
        if proc.returncode == 255 or any("KVM" in line for line in proc.stderr.splitlines()):
            raise NotPreinitialised(f"unik-hvt --save-snapshot exited {proc.returncode}: "
                                    f"{lines[-1] if lines else 'no message'}")
        raise BuildError(f"pre-initialising {elf.name} (unik-hvt --save-snapshot) exited {proc.returncode}; "
                         f"its module-level code runs at build time:\n" + "\n".join(lines))
    partial.replace(out)
    header = read_header(out)
    digest = hashlib.sha256()
    with open(elf, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    data: dict[str, object] = {
        "type": "unik.hvt.snapshot", "version": 1, "snapshot": out.name,
        "elf": {"file": elf.name, "sha256": digest.hexdigest(), "build_id": header.elf_build_id,
                "bytes": header.elf_size},
        "monitor": {"build_id": header.monitor_build_id}, "mem_mib": header.mem_mib,
        "pages": header.pages, "bytes": header.bytes, "seconds": round(seconds, 3),
    }
    record.write_text(json.dumps(data, indent=2) + "\n")
    return data
