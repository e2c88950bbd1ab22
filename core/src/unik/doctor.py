"""Building blocks of targets' host checks (``unik doctor``).

Each target's :meth:`unik.target.Target.doctor` returns checks
(:class:`unik.target.Check`); those several targets share live here: a command on
``PATH`` and the Debian package that provides it, a capability of this process, the
TUN/TAP device, the right to create TAP devices and whether C accelerators load.
``root`` arguments name where ``/proc``, ``/dev`` and ``/sys`` are, for tests.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from . import accel
from .target import Check

#: Capability numbers (linux/capability.h) that targets ask about.
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21

TUN = "dev/net/tun"


def command(tool: str, purpose: str, package: str, *, required: bool = True, fix: str = "",
            path: str | None = None) -> Check:
    """Whether ``tool`` is on ``PATH`` (or is the file ``path``); the fix installs ``package``."""
    found = (path if path and os.access(path, os.X_OK) else None) if path else shutil.which(tool)
    return Check(f"{tool} ({purpose})", found is not None, found or "not found",
                 fix=fix or f"apt-get install {package}", required=required)


def capabilities(root: Path = Path("/")) -> int:
    """The effective capability set of this process (``CapEff`` of ``/proc/self/status``), 0 if unknown."""
    try:
        status = (root / "proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def has_capability(cap: int, root: Path = Path("/")) -> bool:
    """Whether this process holds capability number ``cap``."""
    return bool(capabilities(root) >> cap & 1)


def tun_device(purpose: str, root: Path = Path("/"), *, required: bool = False) -> Check:
    """Whether ``/dev/net/tun`` exists and this user can open it."""
    path = root / TUN
    if not path.exists():
        return Check(f"/{TUN} ({purpose})", False, "absent",
                     fix="modprobe tun (in a container: docker run --device /dev/net/tun)", required=required)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return Check(f"/{TUN} ({purpose})", False, f"cannot open it: {exc.strerror}",
                     fix="run as root, or make /dev/net/tun readable and writable for this user",
                     required=required)
    return Check(f"/{TUN} ({purpose})", True, "present and usable", required=required)


def own_taps(root: Path = Path("/"), uid: int | None = None) -> list[str]:
    """The persistent TAP devices this user owns (which it can open without CAP_NET_ADMIN)."""
    uid = os.geteuid() if uid is None else uid
    out = []
    for dev in sorted((root / "sys/class/net").glob("*")):
        try:
            owner = int((dev / "owner").read_text())
        except (OSError, ValueError):
            continue  # not a TUN/TAP device
        if owner == uid:
            out.append(dev.name)
    return out


def tap_privilege(purpose: str, root: Path = Path("/"), *, required: bool = False) -> Check:
    """Whether this process may create TAP devices (CAP_NET_ADMIN), else which it owns."""
    name = f"CAP_NET_ADMIN ({purpose})"
    if has_capability(CAP_NET_ADMIN, root):
        return Check(name, True, "held: TAP devices can be created and set up", required=required)
    owned = own_taps(root)
    detail = (f"not held; TAPs you own and can use: {', '.join(owned)}" if owned
              else "not held, and you own no persistent TAP")
    return Check(name, bool(owned), detail, required=required,
                 fix="run as root, or have root create a TAP you own: "
                     "ip tuntap add tap0 mode tap vnet_hdr user $USER && ip link set tap0 up")


def accelerators(modules: Sequence[str], distribution: str) -> Check:
    """Whether the C accelerators ``modules`` of ``distribution`` load (else the slower pure twins run)."""
    name = f"C accelerators of {distribution} ({', '.join(m.rsplit('.', 1)[1] for m in modules)})"
    if accel.pure():
        return Check(name, True, "UNIK_PURE is set: the pure-Python twins are used", required=False)
    failed = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            failed.append(f"{module}: {exc}")
    return Check(name, not failed, "; ".join(failed) or "loaded", required=False,
                 fix=f"reinstall {distribution} from its wheel, or build it with a C compiler "
                     f"(apt-get install gcc python3-dev); until then the pure-Python twins run, slower")
