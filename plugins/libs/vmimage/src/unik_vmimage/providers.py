"""The guest providers every VM target has: the console, the clocks, sleep and the guest kernel's CSPRNG.

Their implementations are the same on every VM target — the init's standard output
(the serial port, or Xen's hvc0), and :mod:`unik.posix` over the guest kernel — and
only their names and descriptions differ: :func:`guest_providers` makes a target's set
from its base class, so each target writes what its devices are, not the classes again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from .target import GuestProvider

#: Each kind's implementation, docstring and default description.
_GUEST: dict[str, tuple[str, str, str]] = {
    "console": ("unik_vmguest.console:SerialConsole", "The guest's console: the init's standard output.",
                "the guest's console"),
    "monotonic_clock": ("unik.posix:PosixMonotonicClock", "The guest's CLOCK_MONOTONIC.",
                        "the guest kernel's CLOCK_MONOTONIC"),
    "wall_clock": ("unik.posix:PosixWallClock", "The guest's CLOCK_REALTIME.", "the guest kernel's CLOCK_REALTIME"),
    "sleep": ("unik.posix:PosixSleep", "asyncio timers in the guest.", "asyncio timers on the guest's monotonic clock"),
    "random": ("unik.posix:GetrandomRandom", "The guest kernel's CSPRNG; a CSPRNG library outranks it.",
               "the guest kernel's CSPRNG"),
}
#: The provider names' suffixes (``virtio.monotonic-clock``), the console's given per target.
_SUFFIX = {"monotonic_clock": "monotonic-clock", "wall_clock": "wall-clock", "sleep": "sleep", "random": "getrandom"}
#: Class names, as a target's providers module would write them.
_CLASS = {"console": "Console", "monotonic_clock": "MonotonicClock", "wall_clock": "WallClock", "sleep": "Sleep",
          "random": "Random"}


def guest_providers(base: type[GuestProvider], target: str, console: str,
                    descriptions: Mapping[str, str]) -> list[type[GuestProvider]]:
    """The console, clock, sleep and random providers of VM target ``target``, subclasses of ``base``.

    ``console`` is the console provider's name after ``<target>.`` (``serial-console``);
    ``descriptions`` says, by kind, what this target's devices are (``unik targets``
    shows it).  The random provider ranks below a CSPRNG library (priority -10).
    """
    unknown = set(descriptions) - set(_GUEST)
    if unknown:
        raise ValueError(f"guest_providers: no guest provider of kind {sorted(unknown)[0]!r} ({', '.join(_GUEST)})")
    out = []
    for kind, (implementation, doc, description) in _GUEST.items():
        name = f"{target}.{console if kind == 'console' else _SUFFIX[kind]}"
        attrs: dict[str, Any] = {
            "__doc__": doc, "__module__": base.__module__, "PLUGIN_NAME": name, "kind": kind,
            "implementation": implementation, "description": descriptions.get(kind, description),
        }
        if kind == "random":
            attrs["priority"] = -10
        out.append(cast("type[GuestProvider]", type(_CLASS[kind], (base,), attrs)))
    return out
