"""Device providers: the classes plugins register to implement a device kind.

A provider is a class (the hatchling pattern) with a unique ``PLUGIN_NAME``.  The
composer asks each provider of a kind whether it :meth:`~Provider.applies` to a
device request, picks the one with the highest ``priority``, and asks it to
:meth:`~Provider.configure` the device: which options to pass to the implementation's
``connect``, which keys to read at run time, which files to bake into the artifact.
Providers are never imported into the running application: ``implementation`` names
the class (``"unik_fdio.tap:TapNetwork"``) that the generated ``main.py`` imports.

What targets share is here too, so that a target declares its providers in a few lines:
:func:`posix_providers` makes the console, clocks, sleep and ``getrandom(2)`` providers
over :mod:`unik.posix` that every Linux-based target has; :class:`DeviceProvider` is a
named device whose run-time options come from per-device keys (``--net service=tap0``),
and :class:`BlockProvider` one whose device table is :data:`BLOCK_OPTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, cast

from .errors import ConfigError
from .keys import Key, KeyValues

OptionType = Literal["str", "int", "float", "bool", "path"]


@dataclass(frozen=True)
class Need:
    """A device a provider depends on.

    ``name`` is the default device name; ``None`` means the device is shared by kind
    (one monotonic clock for everyone) and named after the kind.  An application can
    rename a need in its device table: ``[tool.unik.devices.stack.use] network = "uplink"``.
    """

    kind: str
    name: str | None = None

    @property
    def default_name(self) -> str:
        """The device name used unless the application renames it."""
        return self.name or self.kind


@dataclass(frozen=True)
class Option:
    """A key a provider accepts in ``[tool.unik.devices.NAME]``.

    ``check(value)`` raises :class:`ValueError` for a value of the right type that is
    still wrong; its message, which says what to give instead, becomes the error naming
    the table and the key (as a :class:`~unik.keys.Key`'s ``check`` does for keys).
    """

    name: str
    help: str
    type: OptionType = "str"
    required: bool = False
    default: Any = None
    check: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class KeyRef:
    """An option whose value is read from a key when the application starts.

    With ``per_device`` the value bound to this device (``--net service=tap0``) wins.
    """

    key: str
    per_device: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON form stored in the plan."""
        return {"key": self.key, "per_device": self.per_device}


@dataclass(frozen=True)
class BakedFile:
    """A file copied into the artifact: ``source`` on the host, ``dest`` inside."""

    source: str
    dest: str


@dataclass(frozen=True)
class Request:
    """What the composer knows when it asks a provider about one device."""

    device: str
    kind: str
    target: str
    table: Mapping[str, Any]
    table_name: str
    config_file: str
    root: Path
    keys: KeyValues

    def error(self, key: str | None, why: str) -> ConfigError:
        """A :class:`ConfigError` naming this device's table and ``key``."""
        return ConfigError(self.config_file, self.table_name, key, why)


@dataclass
class Configured:
    """A provider's decisions for one device."""

    options: dict[str, Any] = field(default_factory=dict)
    key_options: dict[str, KeyRef] = field(default_factory=dict)
    files: list[BakedFile] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


#: The names of :data:`unik.devices.KINDS`, for the providers' kind check: importing the
#: device protocols (asyncio's types, typing's Protocol machinery) took 1-3 ms of every
#: ``unik run``, which checks the providers it loads but uses no protocol
#: (``tests/core/test_startup_imports.py`` keeps the two the same).
KIND_NAMES = frozenset({
    "console", "monotonic_clock", "wall_clock", "sleep", "entropy", "random", "network", "block",
    "kv_ro", "kv_rw", "stack", "fs", "tls",
})


class Provider:
    """Base class of device providers; subclasses set the class attributes."""

    #: Unique name, ``"<plugin>.<what>"``, e.g. ``"unix.tap"``.
    PLUGIN_NAME: ClassVar[str]
    #: The device kind provided (a key of :data:`unik.devices.KINDS`).
    kind: ClassVar[str]
    #: ``"module:Class"`` of the implementation imported by the generated main.
    implementation: ClassVar[str]
    #: One line for ``unik targets`` and ``describe``.
    description: ClassVar[str] = ""
    #: Targets this provider serves; ``None`` for every target.
    targets: ClassVar[frozenset[str] | None] = None
    #: Among providers that apply, the highest priority wins.
    priority: ClassVar[int] = 0
    #: Devices the implementation's ``connect`` receives, by keyword.
    needs: ClassVar[Mapping[str, Need]] = {}
    #: Keys this provider declares (shown by ``configure --help``).
    keys: ClassVar[Sequence[Key]] = ()
    #: Keys it accepts in its device table.
    options: ClassVar[Sequence[Option]] = ()
    #: ``"module:Class"`` of an asyncio event loop whose network methods use this device (a
    #: stack's): the generated ``main.py`` runs on it and attaches the device once connected
    #: (``Class.attach_running(device)``); ``""``: asyncio's own loop.
    event_loop: ClassVar[str] = ""

    @classmethod
    def serves(cls, target: str) -> bool:
        """Whether the provider can be used on ``target`` at all."""
        return cls.targets is None or target in cls.targets

    @classmethod
    def applies(cls, request: Request) -> bool:
        """Whether this provider should be considered for ``request``."""
        return True

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Options for the implementation; the default copies the declared options."""
        return Configured(options=cls.table_options(request))

    @classmethod
    def table_options(cls, request: Request) -> dict[str, Any]:
        """The device table's values for the declared :attr:`options`, checked."""
        return checked_options(request, cls.options)


def checked_options(request: Request, options: Sequence[Option]) -> dict[str, Any]:
    """The device table's values for ``options``, checked, with their defaults."""
    out: dict[str, Any] = {}
    for opt in options:
        if opt.name in request.table:
            out[opt.name] = _check_option(request, opt, request.table[opt.name])
        elif opt.required:
            raise request.error(opt.name, f"missing: {opt.help}")
        elif opt.default is not None:
            out[opt.name] = opt.default
    return out


#: The device-table keys of a ``block`` device, the same for every target's provider, so that
#: an application's ``[tool.unik.devices.NAME]`` configures on each (``unik run --block
#: NAME=FILE`` overrides ``file``).
BLOCK_OPTIONS: tuple[Option, ...] = (
    Option("file", "default backing file, relative to where the application runs (--block DEVICE=FILE "
           "overrides it)"),
    Option("read_only", "attach the disk read-only", "bool", default=False),
    Option("sector_size", "sector size in bytes", "int", default=512),
)
#: Sector sizes a block device may declare.
SECTOR_SIZES = (512, 1024, 2048, 4096)


def block_options(request: Request, sector_sizes: Sequence[int] = SECTOR_SIZES, why: str = "") -> dict[str, Any]:
    """A block device table's :data:`BLOCK_OPTIONS`, checked; ``sector_sizes`` the target supports."""
    options = checked_options(request, BLOCK_OPTIONS)
    if options["sector_size"] not in sector_sizes:
        sizes = ", ".join(map(str, sector_sizes[:-1])) + " or " * (len(sector_sizes) > 1) + str(sector_sizes[-1])
        raise request.error("sector_size", f"must be {sizes}" + (f" on the {request.target} target ({why})"
                                                                   if why else ""))
    return options


class DeviceProvider(Provider):
    """A provider of a named device: its options are the table's and ``name``, plus per-device keys.

    :attr:`device_keys` pairs an option of the implementation's ``connect`` with the
    per-device key it is read from when the application starts (``(("ifname", "net"),)``:
    ``--net service=tap0`` gives device ``service`` ``ifname="tap0"``).
    """

    #: (implementation option, the per-device key it is read from at run time) pairs.
    device_keys: ClassVar[Sequence[tuple[str, str]]] = ()

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """The table's options, the device's name and the per-device keys."""
        options = cls.table_options(request)
        options["name"] = request.device
        return Configured(options=options, key_options={
            option: KeyRef(key, per_device=True) for option, key in cls.device_keys})


class BlockProvider(DeviceProvider):
    """A ``block`` device configured by :data:`BLOCK_OPTIONS` (the same table on every target)."""

    kind: ClassVar[str] = "block"
    options: ClassVar[Sequence[Option]] = BLOCK_OPTIONS
    #: The sector sizes the target's disks support, and why when it is fewer than :data:`SECTOR_SIZES`.
    sector_sizes: ClassVar[Sequence[int]] = SECTOR_SIZES
    sector_sizes_why: ClassVar[str] = ""

    @classmethod
    def table_options(cls, request: Request) -> dict[str, Any]:
        """:func:`block_options` with this target's sector sizes."""
        return block_options(request, cls.sector_sizes, cls.sector_sizes_why)


#: The devices of :mod:`unik.posix`, by kind: implementation, provider name's suffix, docstring,
#: default description.
_POSIX: dict[str, tuple[str, str, str, str]] = {
    "console": ("unik.posix:StdoutConsole", "console", "Standard output.", "standard output"),
    "monotonic_clock": ("unik.posix:PosixMonotonicClock", "monotonic-clock", "CLOCK_MONOTONIC.",
                        "the kernel's CLOCK_MONOTONIC"),
    "wall_clock": ("unik.posix:PosixWallClock", "wall-clock", "CLOCK_REALTIME.", "the kernel's CLOCK_REALTIME"),
    "sleep": ("unik.posix:PosixSleep", "sleep", "asyncio timers.", "asyncio timers on the monotonic clock"),
    "random": ("unik.posix:GetrandomRandom", "getrandom", "getrandom(2); a CSPRNG library (unik-lib-entropy) "
               "outranks it.", "the kernel's CSPRNG through getrandom(2)"),
    "entropy": ("unik.posix:GetrandomEntropy", "getrandom-entropy", "getrandom(2) as a raw entropy source.",
                "the kernel's getrandom(2) as an entropy source"),
}
#: Class names, as a providers module would write them.
_POSIX_CLASS = {"console": "Console", "monotonic_clock": "MonotonicClock", "wall_clock": "WallClock",
                "sleep": "Sleep", "random": "Random", "entropy": "Entropy"}
P = TypeVar("P", bound=Provider)


def posix_providers(base: type[P], target: str, descriptions: Mapping[str, str],
                    console: str = "console") -> list[type[P]]:
    """Providers of :mod:`unik.posix`'s devices for ``target``, subclasses of ``base``, in ``descriptions``' order.

    Every target runs CPython on a Linux kernel (the host's, a guest's, the host's behind
    a sandbox), so its console (standard output), clocks, sleep and ``getrandom(2)`` are
    the same code; only what they are on that target differs.  ``descriptions`` says it by
    kind (``unik targets`` shows it; ``""`` keeps the default), from ``console``,
    ``monotonic_clock``, ``wall_clock``, ``sleep``, ``random``, ``entropy``.  The names are
    ``<target>.<suffix>`` (``unix.monotonic-clock``), the console's suffix ``console``;
    ``random`` and ``entropy`` rank below a CSPRNG library's (priority -10)::

        Console, MonotonicClock = posix_providers(_Mine, "mine", {
            "console": "the board's UART", "monotonic_clock": ""})
    """
    unknown = set(descriptions) - set(_POSIX)
    if unknown:
        raise ValueError(f"posix_providers: no device of kind {sorted(unknown)[0]!r} in unik.posix "
                         f"({', '.join(_POSIX)})")
    out = []
    for kind, description in descriptions.items():
        implementation, suffix, doc, default = _POSIX[kind]
        attrs: dict[str, Any] = {
            "__doc__": doc, "__module__": base.__module__, "kind": kind, "implementation": implementation,
            "PLUGIN_NAME": f"{target}.{console if kind == 'console' else suffix}",
            "description": description or default,
        }
        if kind in ("random", "entropy"):
            attrs["priority"] = -10
        out.append(cast("type[P]", type(_POSIX_CLASS[kind], (base,), attrs)))
    return out


_PY_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str, "path": str, "int": int, "float": (int, float), "bool": bool,
}


def _check_option(request: Request, opt: Option, value: Any) -> Any:
    expected = _PY_TYPES[opt.type]
    if not isinstance(value, expected) or (opt.type == "int" and isinstance(value, bool)):
        raise request.error(opt.name, f"expected a {opt.type}, got {value!r}")
    if opt.check is not None:
        try:
            opt.check(value)
        except ValueError as exc:
            raise request.error(opt.name, str(exc)) from None
    if opt.type == "path":
        path = (request.root / str(value)).resolve()
        if not path.exists():
            raise request.error(opt.name, f"{value!r} does not exist (looked in {path})")
        return str(path)
    return value
