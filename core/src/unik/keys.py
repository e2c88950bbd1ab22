"""Configuration keys: ``--net service=tap0``, ``--ipv4=10.0.0.2/24``, ``--port 9090``.

Keys are declared by targets (``net``, ``block``), by libraries (``ipv4``) and by the
application (its keyword-only entry parameters).  They are set at configure time and
can be overridden at run time; the generated ``main.py`` reads them through
:class:`KeyValues`.  A *per-device* key takes ``DEVICE=VALUE`` to address one device
(``--net service=tap0``) or a plain value for all (``--net=socket``).  A *repeatable* key
collects every value given in one command (``--publish 80:80 --publish 443:443``) as a
comma-separated list; a later command's list replaces it.

Values are checked as they are given, before anything is built or booted: first
against the key's type and choices, then by the key's ``check`` hook, which the
provider or target declaring the key supplies (unik-lib-tcpip's ``--ipv4`` checks an
address/prefix with the parser its stack uses).  A value remembers where it came from
(the command line, or a ``[tool.unik.targets.X]`` table of a file), so an error names
the option, or the file, the table and the key.

A key's *stage* says when it takes effect.  A ``run`` key is read when the artifact
starts: configure saves a default, ``unik run`` may give another.  A ``configure`` key
is built into the artifact (the kernel, the initramfs compression): ``unik run`` giving
a different value configures and builds again into a place of its own, as does any
run-time value that changes the device graph; the saved configuration is never
rewritten by ``unik run``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from .errors import BadKey, ConfigError, UnikError, did_you_mean
from .record import FrozenRecord

KeyType = Literal["str", "int", "float", "bool"]
#: A key's check: called with the parsed value and every key value, it raises
#: :class:`ValueError` whose message says what is wrong (without naming the key).
KeyCheck = Callable[[Any, "KeyValues"], None]
#: When a key takes effect: ``configure`` (built into the artifact) or ``run`` (read at start).
Stage = Literal["configure", "run"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Patterns as text: `re` compiles (and caches) them on first use, not when a unikernel boots.
_NAME = r"^[a-z][a-z0-9_]*$"
_BINDING = r"^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$"


class Key(FrozenRecord):
    """One configuration key and how to parse it.

    ``check`` (optional) judges a parsed value beyond its type: it raises
    :class:`ValueError` with the reason.  It runs in the ``unik`` command (configure,
    run) on the declaring plugin's own :class:`Key`, and is not saved in plans.
    ``internal`` keys are set by a target's own machinery (the spt tender's ``--fd``),
    never by users: help and ``unik targets`` leave them out, and ``unik`` refuses them.
    """

    __slots__ = ("check", "choices", "default", "help", "internal", "metavar", "name", "per_device", "repeatable",
                 "stage", "type")
    name: str
    help: str
    type: KeyType
    default: str | None
    per_device: bool
    choices: tuple[str, ...]
    metavar: str | None
    repeatable: bool
    check: KeyCheck | None
    internal: bool
    stage: Stage

    def __init__(self, name: str, help: str, type: KeyType = "str", default: str | None = None,
                 per_device: bool = False, choices: tuple[str, ...] = (), metavar: str | None = None,
                 repeatable: bool = False, check: KeyCheck | None = None, internal: bool = False,
                 stage: Stage = "run") -> None:
        if not re.match(_NAME, name):
            raise BadKey(f"bad key name {name!r}: use lower-case letters, digits and _")
        if repeatable and (per_device or type != "str"):
            raise BadKey(f"key {name!r}: a repeatable key is a plain string key")
        if stage not in ("configure", "run"):
            raise BadKey(f"key {name!r}: stage {stage!r} is neither `configure` nor `run`")
        self._set(name=name, help=help, type=type, default=default, per_device=per_device, choices=choices,
                  metavar=metavar, repeatable=repeatable, check=check, internal=internal,
                  stage=stage)

    @property
    def option(self) -> str:
        """The command-line spelling, ``--ipv4-gateway``."""
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """Convert ``text`` to the key's type, or raise :class:`BadKey`."""
        try:
            return self.convert(text)
        except ValueError as exc:
            raise BadKey(f"{self.option}: {exc}") from None

    def convert(self, text: str) -> Any:
        """Convert ``text`` to the key's type, or raise :class:`ValueError` saying why."""
        if self.choices and text not in self.choices:
            raise ValueError(f"{text!r} is not one of {', '.join(self.choices)}{did_you_mean(text, self.choices)}")
        try:
            if self.type == "int":
                return int(text, 0)
            if self.type == "float":
                return float(text)
            if self.type == "bool":
                low = text.lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
                raise ValueError(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid {self.type}") from None
        return text

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description (for plans and ``unik targets``)."""
        out: dict[str, Any] = {"name": self.name, "help": self.help, "type": self.type}
        if self.default is not None:
            out["default"] = self.default
        if self.per_device:
            out["per_device"] = True
        if self.choices:
            out["choices"] = list(self.choices)
        if self.metavar:
            out["metavar"] = self.metavar
        if self.repeatable:
            out["repeatable"] = True
        if self.internal:
            out["internal"] = True
        if self.stage != "run":
            out["stage"] = self.stage
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Key:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=data["name"], help=data.get("help", ""), type=data.get("type", "str"),
            default=data.get("default"), per_device=data.get("per_device", False),
            choices=tuple(data.get("choices", ())), metavar=data.get("metavar"),
            repeatable=data.get("repeatable", False),
            internal=data.get("internal", False),
            stage=data.get("stage", "run"),
        )


class KeyValue(FrozenRecord):
    """What the user said for one key: a plain value and per-device bindings."""

    __slots__ = ("devices", "value")
    value: str | None
    devices: Mapping[str, str]

    def __init__(self, value: str | None = None, devices: Mapping[str, str] | None = None) -> None:
        self._set(value=value, devices={} if devices is None else devices)


class Origin(FrozenRecord):
    """Where key values were written: a table of a file (``None`` stands for the command line)."""

    __slots__ = ("file", "table")
    file: str
    table: str

    def __init__(self, file: str, table: str) -> None:
        self._set(file=file, table=table)


#: Where each value came from, by (key, device); device ``None`` is the plain value.
Origins = Mapping[tuple[str, "str | None"], "Origin | None"]


class KeyValues:
    """Key values as given on the command line, merged over each key's default."""

    def __init__(self, keys: Iterable[Key], values: Mapping[str, KeyValue] | None = None,
                 origins: Origins | None = None):
        self.keys: dict[str, Key] = {k.name: k for k in keys}
        self.values: dict[str, KeyValue] = dict(values or {})
        self.origins: dict[tuple[str, str | None], Origin | None] = dict(origins or {})
        for name in self.values:
            if name not in self.keys:
                raise self.unknown(name, self.origins.get((name, None)))

    # -- reading ------------------------------------------------------------------

    def _key(self, name: str) -> Key:
        try:
            return self.keys[name]
        except KeyError:
            raise self.unknown(name, None) from None

    def raw(self, name: str, device: str | None = None) -> str | None:
        """The text given for ``name`` (for ``device`` if bound), else the default."""
        key = self._key(name)
        given = self.values.get(name)
        if given is not None:
            if device is not None and device in given.devices:
                return given.devices[device]
            if given.value is not None:
                return given.value
        return key.default

    def get(self, name: str, device: str | None = None) -> Any:
        """The parsed value of ``name`` (``None`` if unset and without default)."""
        text = self.raw(name, device)
        return None if text is None else self._key(name).parse(text)

    def is_set(self, name: str) -> bool:
        """Whether the user gave ``name`` (a plain value or any binding)."""
        return name in self.values

    def bindings(self, name: str) -> dict[str, str]:
        """The per-device bindings given for ``name``."""
        given = self.values.get(name)
        return dict(given.devices) if given else {}

    # -- errors -------------------------------------------------------------------

    def error(self, name: str, why: str, device: str | None = None) -> UnikError:
        """An error about the value of ``name`` (bound to ``device``) that names where it was given.

        :class:`ConfigError` (file, table, key) for a value from a file, else
        :class:`BadKey` naming the option.
        """
        return _located(name, why, self.origins.get((name, device), self.origins.get((name, None))))

    def unknown(self, name: str, origin: Origin | None) -> UnikError:
        """The error for a key nobody declares, with the nearest known key."""
        if origin is not None:
            known = ", ".join(sorted(n for n, k in self.keys.items() if not k.internal)) or "none"
            hint = did_you_mean(name, self.keys)
            return ConfigError(origin.file, origin.table, name, f"unknown key{hint} (known here: {known})")
        option = "--" + name.replace("_", "-")
        options = [k.option for k in self.keys.values() if not k.internal]
        return BadKey(f"unknown option {option}{did_you_mean(option, options)}")

    def check(self, keys: Iterable[Key]) -> None:
        """Run the ``check`` hooks of ``keys`` on every value given for them.

        ``keys`` are the declaring plugin's own :class:`Key` objects (a provider's, a
        target's), whose hooks the saved keys of a plan do not carry.
        """
        for key in keys:
            given = self.values.get(key.name)
            if key.check is None or given is None:
                continue
            texts: list[tuple[str | None, str]] = [(None, given.value)] if given.value is not None else []
            texts += sorted(given.devices.items())
            for device, text in texts:
                value = key.parse(text)
                try:
                    key.check(value, self)
                except ValueError as exc:
                    why = str(exc) if device is None else f"{device}={text}: {exc}"
                    raise self.error(key.name, why, device) from None

    # -- changing -----------------------------------------------------------------

    def with_args(self, args: Mapping[str, Iterable[str]], origin: Origin | None = None) -> KeyValues:
        """A copy with command-line texts (``{"net": ["service=tap0"]}``) applied.

        ``origin`` says where the texts were written (``None``: the command line);
        errors, now and when the values are checked later, name it.
        """
        values = dict(self.values)
        origins = dict(self.origins)
        for name, texts in args.items():
            if name not in self.keys:
                raise self.unknown(name, origin)
            key = self.keys[name]
            current = values.get(name, KeyValue())
            value, devices = current.value, dict(current.devices)
            if key.repeatable:
                texts = list(texts)
                for text in texts:
                    try:
                        key.convert(text)
                    except ValueError as exc:
                        raise _located(name, str(exc), origin) from None
                values[name] = KeyValue(",".join(texts), devices)
                origins[(name, None)] = origin
                continue
            for text in texts:
                match = re.match(_BINDING, text) if key.per_device else None
                device, given = (match.group(1), match.group(2)) if match else (None, text)
                try:
                    key.convert(given)
                except ValueError as exc:
                    why = str(exc) if device is None else f"{device}={given}: {exc}"
                    raise _located(name, why, origin) from None
                if device is not None:
                    devices[device] = given
                else:
                    value = given
                origins[(name, device)] = origin
            values[name] = KeyValue(value, devices)
        return KeyValues(self.keys.values(), values, origins)

    def layered(self, args: Mapping[str, Iterable[str]]) -> KeyValues:
        """A copy with a later layer's texts applied (``unik run``'s over configure's).

        Unlike :meth:`with_args`, which combines the texts of one command line, a plain
        value in ``args`` replaces everything an earlier layer gave for that key, its
        per-device bindings included: ``unik run --net=socket`` on a build configured
        with ``--net service=tap0`` means sockets.  Bindings in ``args`` override those
        of the same devices only.
        """
        kept = {n for n in self.values if n not in args or not _has_plain(self.keys.get(n), args[n])}
        return KeyValues(self.keys.values(), {n: v for n, v in self.values.items() if n in kept},
                         {at: o for at, o in self.origins.items() if at[0] in kept}).with_args(args)

    def restricted(self, names: Iterable[str]) -> KeyValues:
        """Only the keys named (the ones a plan actually uses)."""
        wanted = set(names)
        return KeyValues(
            [k for k in self.keys.values() if k.name in wanted],
            {n: v for n, v in self.values.items() if n in wanted},
            {at: o for at, o in self.origins.items() if at[0] in wanted},
        )

    # -- serialising --------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """``{"keys": [...], "values": {name: {"value":..., "devices": {...}}}}``."""
        values: dict[str, Any] = {}
        for name in sorted(self.values):
            v = self.values[name]
            entry: dict[str, Any] = {}
            if v.value is not None:
                entry["value"] = v.value
            if v.devices:
                entry["devices"] = dict(sorted(v.devices.items()))
            values[name] = entry
        return {
            "keys": [self.keys[n].to_json() for n in sorted(self.keys)],
            "values": values,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyValues:
        """Inverse of :meth:`to_json`."""
        keys = [Key.from_json(k) for k in data.get("keys", [])]
        values = {
            n: KeyValue(v.get("value"), dict(v.get("devices", {})))
            for n, v in data.get("values", {}).items()
        }
        return cls(keys, values)

    def as_args(self) -> list[str]:
        """The values as command-line arguments, for passing to an artifact."""
        out: list[str] = []
        for name in sorted(self.values):
            v = self.values[name]
            opt = self.keys[name].option
            if v.value is not None:
                out.append(f"{opt}={v.value}")
            for dev, text in sorted(v.devices.items()):
                out += [opt, f"{dev}={text}"]
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyValues) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"KeyValues({self.to_json()['values']!r})"


def _located(name: str, why: str, origin: Origin | None) -> UnikError:
    if origin is not None:
        return ConfigError(origin.file, origin.table, name, why)
    return BadKey(f"--{name.replace('_', '-')}: {why}")


def _has_plain(key: Key | None, texts: Iterable[str]) -> bool:
    """Whether ``texts`` give ``key`` a plain value (not only ``DEVICE=VALUE`` bindings)."""
    if key is None or not key.per_device:
        return True
    return any(not re.match(_BINDING, t) for t in texts)


def layer_args(base: Mapping[str, Iterable[str]], over: Mapping[str, Iterable[str]],
               keys: Mapping[str, Key]) -> dict[str, list[str]]:
    """Command-line texts of ``over`` layered on ``base`` as :meth:`KeyValues.layered` does."""
    out = {n: list(t) for n, t in base.items()}
    for name, texts in over.items():
        texts = list(texts)
        if name in out and not _has_plain(keys.get(name), texts):
            out[name] += texts
        else:
            out[name] = texts
    return out


#: A target's own command-line dialect, rewritten into unik's: ``syntax(argv, keys) -> argv``.
#: A target contributes one with the ``unik_argv_syntax`` hook (spt's ``--net:service=tap0``).
ArgvSyntax = Callable[[Sequence[str], Mapping[str, Key]], list[str]]
