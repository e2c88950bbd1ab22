"""Configuration keys: ``--net service=tap0``, ``--ipv4=10.0.0.2/24``, ``--port 9090``.

Keys are declared by targets (``net``, ``block``), by libraries (``ipv4``) and by the
application (its keyword-only entry parameters).  They are set at configure time and
can be overridden at run time; the generated ``main.py`` reads them through
:class:`KeyValues`.  A *per-device* key takes ``DEVICE=VALUE`` to address one device
(``--net service=tap0``) or a plain value for all (``--net=socket``).  A *repeatable* key
collects every value given in one command (``--publish 80:80 --publish 443:443``) as a
comma-separated list; a later command's list replaces it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .errors import BadKey
from .record import FrozenRecord

KeyType = Literal["str", "int", "float", "bool"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Patterns as text: `re` compiles (and caches) them on first use, not when a unikernel boots.
_NAME = r"^[a-z][a-z0-9_]*$"
_BINDING = r"^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$"


class Key(FrozenRecord):
    """One configuration key and how to parse it."""

    __slots__ = ("choices", "default", "help", "metavar", "name", "per_device", "repeatable", "type")
    name: str
    help: str
    type: KeyType
    default: str | None
    per_device: bool
    choices: tuple[str, ...]
    metavar: str | None
    repeatable: bool

    def __init__(self, name: str, help: str, type: KeyType = "str", default: str | None = None,
                 per_device: bool = False, choices: tuple[str, ...] = (), metavar: str | None = None,
                 repeatable: bool = False) -> None:
        if not re.match(_NAME, name):
            raise BadKey(f"bad key name {name!r}: use lower-case letters, digits and _")
        if repeatable and (per_device or type != "str"):
            raise BadKey(f"key {name!r}: a repeatable key is a plain string key")
        self._set(name=name, help=help, type=type, default=default, per_device=per_device, choices=choices,
                  metavar=metavar, repeatable=repeatable)

    @property
    def option(self) -> str:
        """The command-line spelling, ``--ipv4-gateway``."""
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """Convert ``text`` to the key's type, or raise :class:`BadKey`."""
        if self.choices and text not in self.choices:
            raise BadKey(f"{self.option}: {text!r} is not one of {', '.join(self.choices)}")
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
            raise BadKey(f"{self.option}: {text!r} is not a valid {self.type}") from None
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
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Key:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=data["name"], help=data.get("help", ""), type=data.get("type", "str"),
            default=data.get("default"), per_device=data.get("per_device", False),
            choices=tuple(data.get("choices", ())), metavar=data.get("metavar"),
            repeatable=data.get("repeatable", False),
        )


class KeyValue(FrozenRecord):
    """What the user said for one key: a plain value and per-device bindings."""

    __slots__ = ("devices", "value")
    value: str | None
    devices: Mapping[str, str]

    def __init__(self, value: str | None = None, devices: Mapping[str, str] | None = None) -> None:
        self._set(value=value, devices={} if devices is None else devices)


class KeyValues:
    """Key values as given on the command line, merged over each key's default."""

    def __init__(self, keys: Iterable[Key], values: Mapping[str, KeyValue] | None = None):
        self.keys: dict[str, Key] = {k.name: k for k in keys}
        self.values: dict[str, KeyValue] = dict(values or {})
        for name in self.values:
            if name not in self.keys:
                raise BadKey(f"unknown key --{name}")

    # -- reading ------------------------------------------------------------------

    def _key(self, name: str) -> Key:
        try:
            return self.keys[name]
        except KeyError:
            raise BadKey(f"unknown key --{name}") from None

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

    # -- changing -----------------------------------------------------------------

    def with_args(self, args: Mapping[str, Iterable[str]]) -> KeyValues:
        """A copy with command-line texts (``{"net": ["service=tap0"]}``) applied."""
        values = dict(self.values)
        for name, texts in args.items():
            key = self._key(name)
            current = values.get(name, KeyValue())
            value, devices = current.value, dict(current.devices)
            if key.repeatable:
                texts = list(texts)
                for text in texts:
                    key.parse(text)
                values[name] = KeyValue(",".join(texts), devices)
                continue
            for text in texts:
                match = re.match(_BINDING, text) if key.per_device else None
                if match:
                    key.parse(match.group(2))
                    devices[match.group(1)] = match.group(2)
                else:
                    key.parse(text)
                    value = text
            values[name] = KeyValue(value, devices)
        return KeyValues(self.keys.values(), values)

    def restricted(self, names: Iterable[str]) -> KeyValues:
        """Only the keys named (the ones a plan actually uses)."""
        wanted = set(names)
        return KeyValues(
            [k for k in self.keys.values() if k.name in wanted],
            {n: v for n, v in self.values.items() if n in wanted},
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


def solo5_syntax(argv: Iterable[str], keys: Mapping[str, Key]) -> list[str]:
    """Rewrite solo5's ``--net:service=tap0`` into ``--net service=tap0`` (up to ``--``).

    Only per-device keys are rewritten; anything else is left for the parser to judge.
    """
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            out += [arg, *args]
            break
        option, colon, binding = arg.partition(":")
        name = option[2:].replace("-", "_")
        if arg.startswith("--") and colon and name in keys and keys[name].per_device and "=" in binding:
            out += [option, binding]
        else:
            out.append(arg)
    return out
