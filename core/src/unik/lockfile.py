"""``unik.lock``: what a project's builds are pinned to, kept beside its ``pyproject.toml``.

The first VM build records the guest kernel it used (package, version, digest); later
builds use exactly that until the user asks to move on (``unik build
--update-kernel``).  The file is TOML, one table per kind of pin and one sub-table per
choice (``[kernel.debian]``), meant to be committed with the project.  It is written
whole through a temporary file and a rename.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .cache import write_atomic
from .errors import ConfigError

LOCK_FILE = "unik.lock"
HEADER = ("# unik.lock: what this project's builds are pinned to (commit it).\n"
          "# `unik build --update-kernel` moves the guest kernel on; unik writes this file.\n")
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")

Pins = dict[str, dict[str, dict[str, str]]]


def _key(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name)


class LockFile:
    """The ``unik.lock`` of the project at ``root``."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE

    def read(self) -> Pins:
        """Every pin (empty when there is no file)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(self.path), "", None, f"not valid TOML ({exc}): fix it, or delete the file "
                              "and build again to pin afresh") from None
        pins: Pins = {}
        for table, entries in data.items():
            if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
                raise ConfigError(str(self.path), table, None, "expected sub-tables such as [kernel.debian]")
            pins[table] = {name: {k: str(v) for k, v in values.items()} for name, values in entries.items()}
        return pins

    def get(self, table: str, name: str) -> dict[str, str] | None:
        """The pin ``[table.name]``, if recorded."""
        return self.read().get(table, {}).get(name)

    def set(self, table: str, name: str, values: dict[str, str]) -> None:
        """Record (or replace) the pin ``[table.name]``."""
        pins = self.read()
        pins.setdefault(table, {})[name] = dict(values)
        lines = [HEADER]
        for t in sorted(pins):
            for n in sorted(pins[t]):
                lines.append(f"\n[{_key(t)}.{_key(n)}]\n")
                lines += [f"{_key(k)} = {json.dumps(v)}\n" for k, v in pins[t][n].items()]
        write_atomic(self.path, "".join(lines))
