"""The table of keys by target and stage, as the README shows it (``unik targets --keys-table``).

It is made from the keys' own declarations (:attr:`unik.keys.Key.stage`), so that the
README cannot drift from what the targets do: a test compares the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plugins import PluginManager

#: A target that does not have the key.
ABSENT = "—"


def key_stages(pm: PluginManager) -> dict[str, dict[str, str]]:
    """``{key: {target: stage}}`` for every user-facing key of every installed target."""
    out: dict[str, dict[str, str]] = {}
    for target in sorted(pm.targets()):
        for key in pm.keys(target, run=True).values():
            if not key.internal:
                out.setdefault(key.name, {})[target] = key.stage
    return out


def keys_table(pm: PluginManager) -> str:
    """A Markdown table: one row per key, one column per target, ``configure``, ``run`` or ``—``."""
    targets = sorted(pm.targets())
    stages = key_stages(pm)
    lines = ["| key | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for name in sorted(stages):
        cells = [stages[name].get(t, ABSENT) for t in targets]
        lines.append(f"| `--{name.replace('_', '-')}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
