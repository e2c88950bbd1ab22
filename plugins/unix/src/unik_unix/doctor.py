"""``unik doctor -t unix``: what running applications as Unix processes needs from this host.

Nothing is required: the host's sockets (``--net socket``), files as disks and stdout
work for every user.  TAP networking (``--net DEVICE=TAP``) needs ``/dev/net/tun`` and
either CAP_NET_ADMIN or a persistent TAP the user owns; the C data paths are optional
(their pure-Python twins run otherwise).
"""

from __future__ import annotations

import sys
from pathlib import Path

from unik.doctor import accelerators, tap_privilege, tun_device
from unik.target import Check

#: The oldest CPython the artifacts run on (the core's requires-python).
PYTHON = (3, 10)


def doctor_checks(root: Path = Path("/")) -> list[Check]:
    """The unix target's host checks (``root``: where /proc, /dev and /sys are, for tests)."""
    version = ".".join(map(str, sys.version_info[:3]))
    checks = [
        Check(f"Python >= {PYTHON[0]}.{PYTHON[1]} (runs the .pyz)", sys.version_info[:2] >= PYTHON,
              f"{sys.executable} {version}", fix="apt-get install python3"),
        tun_device("TAP networking: --net DEVICE=TAP", root),
        tap_privilege("creating TAP devices for --net DEVICE=TAP", root),
        accelerators(["unik_fdio._tap", "unik_fdio._block"], "unik-lib-fdio"),
    ]
    return checks
