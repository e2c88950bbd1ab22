"""``--mem`` under spt: a memory cgroup where the host lets unik make one, ``RLIMIT_AS`` always.

What a VM's ``--mem`` means is resident memory, and that is what a memory cgroup
bounds: the application's pages, the page tables and kernel memory charged to it, the
page cache its block writes dirty.  ``unik run`` makes one cgroup per run, below its
own, and the tender puts the application in it before it runs (``--cgroup``):

* **cgroup v2** (``memory.max``, with ``memory.swap.max`` 0) where this process's
  cgroup hands the memory controller to its children (``+memory`` in its
  ``cgroup.subtree_control``, or enabled there by unik where the kernel allows it);
* else **cgroup v1**'s memory controller where the host mounts it (a hybrid host like
  this project's, whose v2 hierarchy holds no controller): ``memory.limit_in_bytes``,
  and ``memory.memsw.limit_in_bytes`` where swap is accounted, so swap is no way round;
* else none (the reason is said once).

An application the kernel stops there is killed (``SIGKILL`` from the cgroup's OOM
killer); ``unik run`` reads the kernel's own count of such kills (``oom_kill`` in
``memory.events``, or v1's ``memory.oom_control``), never anything the application
wrote, and says so.  ``RLIMIT_AS`` is set always: ``--mem`` itself without a cgroup
(address space, CPython's reserve included: a larger allocation fails with a
``MemoryError``, reported by the boot code), twice ``--mem`` with one (a backstop that
makes hopeless allocations fail at once, above the resident limit, since glibc and
CPython reserve address space they never touch).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

#: Name prefix of the cgroups unik run makes (one per run, removed after it).
PREFIX = "unik-spt-"


@dataclass(frozen=True)
class MemoryCgroup:
    """A cgroup made for one run, bounding its memory to ``mib``."""

    path: Path
    version: int
    mib: int

    @property
    def limit_file(self) -> str:
        """The file holding the limit: ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1)."""
        return "memory.max" if self.version == 2 else "memory.limit_in_bytes"

    def describe(self) -> str:
        """``cgroup v1 memory.limit_in_bytes``."""
        return f"cgroup v{self.version} {self.limit_file}"

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this cgroup for reaching the limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            lines = (self.path / name).read_text().splitlines()
        except OSError:
            return 0
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def remove(self) -> None:
        """Remove the cgroup (a few tries: the kernel frees it once its last process is reaped)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _mounts(root: Path) -> tuple[Path | None, Path | None]:
    """Where cgroup v2 and v1's memory controller are mounted (``/proc/self/mountinfo``)."""
    v2 = v1 = None
    try:
        text = (root / "proc/self/mountinfo").read_text()
    except OSError:
        return None, None
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        fstype, _, options = line.split(" - ", 1)[1].partition(" ")
        where = root / fields[4].lstrip("/")
        if fstype == "cgroup2" and v2 is None:
            v2 = where
        elif fstype == "cgroup" and "memory" in options.split()[-1].split(",") and v1 is None:
            v1 = where
    return v2, v1


def _own(root: Path) -> tuple[str | None, str | None]:
    """The cgroup of this process in the v2 hierarchy and in v1's memory hierarchy (``/proc/self/cgroup``)."""
    v2 = v1 = None
    try:
        text = (root / "proc/self/cgroup").read_text()
    except OSError:
        return None, None
    for line in text.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _v2_parent(mount: Path, own: str) -> Path | None:
    """The v2 cgroup of this process if its children get the memory controller (enabling it if allowed)."""
    here = mount / own.lstrip("/")
    try:
        if "memory" in (here / "cgroup.subtree_control").read_text().split():
            return here
        if "memory" not in (here / "cgroup.controllers").read_text().split():
            return None  # not handed down to us (or bound to a v1 hierarchy)
        (here / "cgroup.subtree_control").write_text("+memory")  # refused where we are not delegated
    except OSError:
        return None
    return here


def make(mib: int, tag: str, *, root: Path = Path("/")) -> tuple[MemoryCgroup | None, str]:
    """A new cgroup bounding memory to ``mib`` MiB, and how; or ``None`` and why not.

    ``root`` is where ``/proc`` and the cgroup file systems are found (tests give a copy).
    """
    mount2, mount1 = _mounts(root)
    own2, own1 = _own(root)
    limit = mib << 20
    parents: list[tuple[int, Path]] = []
    if mount2 is not None and own2 is not None:
        parent = _v2_parent(mount2, own2)
        if parent is not None:
            parents.append((2, parent))
    if mount1 is not None and own1 is not None:
        parents.append((1, mount1 / own1.lstrip("/")))
    for version, parent in parents:
        _sweep(parent)
        path = parent / f"{PREFIX}{tag}"
        try:
            path.mkdir()
        except OSError:
            continue
        cgroup = MemoryCgroup(path, version, mib)
        try:
            if version == 2:
                (path / "memory.max").write_text(str(limit))
                with contextlib.suppress(FileNotFoundError):
                    (path / "memory.swap.max").write_text("0")
            else:
                (path / "memory.limit_in_bytes").write_text(str(limit))
                with contextlib.suppress(FileNotFoundError):
                    (path / "memory.memsw.limit_in_bytes").write_text(str(limit))
        except OSError:
            cgroup.remove()
            continue
        return cgroup, cgroup.describe()
    if not parents:
        return None, ("no memory cgroup this process may make children in (cgroup v2's memory controller "
                      "not delegated here, no cgroup v1 memory controller)")
    return None, f"cannot make a memory cgroup under {parents[-1][1]}"


def _sweep(parent: Path) -> None:
    """Remove cgroups of earlier runs that ended without removing theirs (empty ones only)."""
    try:
        stale = [p for p in parent.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return
    for path in stale:
        with contextlib.suppress(OSError):
            path.rmdir()  # refused while a process is in it


def address_space_mib(mib: int, cgroup: MemoryCgroup | None) -> int:
    """``RLIMIT_AS`` for ``--mem mib``: ``mib`` alone, twice that behind a cgroup (see above)."""
    return mib * 2 if cgroup is not None else mib
