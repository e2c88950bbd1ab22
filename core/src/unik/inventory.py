"""``unik inspect``: what an artifact holds, by kind, with sizes and totals.

A target lists its artifact's files (:meth:`unik.target.Target.inspect`) as
:class:`Content` records; the files an artifact bundles from the plan (the generated
``main.py``, the application, unik and its libraries, baked files) are told apart by
:func:`classify_bundle` with the ``plan.json`` the artifact carries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: The kinds of content, in the order ``unik inspect`` shows them.
KINDS = {
    "kernel": "the guest kernel",
    "kernel module": "kernel modules the init loads",
    "init": "the init (PID 1)",
    "interpreter": "CPython and the shared libraries it loads",
    "standard library": "standard-library modules the application reaches",
    "generated": "what unik configure generated",
    "application": "the application's package",
    "library": "unik and its libraries (Python packages)",
    "baked file": "files baked into the artifact",
    "artifact": "the artifact's own files (images, configurations, manifest)",
    "other": "anything else",
}


@dataclass(frozen=True)
class Content:
    """One file of an artifact: its path (inside the image or zip), size, kind and module or package."""

    path: str
    size: int
    kind: str
    #: The Python package or module (``unik_fat``, ``asyncio``), or the kernel module's name.
    name: str = ""


def module_of(path: str) -> str:
    """The top-level package or module a bundled file belongs to: ``unik_fat/fs.py`` -> ``unik_fat``."""
    first = path.split("/", 1)[0]
    for suffix in (".py", ".pyc"):
        if first.endswith(suffix):
            return first[: -len(suffix)]
    return first.split(".", 1)[0] if "/" not in path and first.endswith(".so") else first


def classify_bundle(files: Iterable[tuple[str, int]], plan: Mapping[str, Any] | None,
                    prefix: str = "") -> list[Content]:
    """Contents for files bundled from a plan (``dest`` paths as :mod:`unik.bundle` names them).

    ``plan`` is the artifact's ``plan.json`` (``None``: none found, everything is a
    library); ``prefix`` is prepended to the shown path (``app/`` in a VM image).
    """
    baked = {f["dest"] for f in (plan or {}).get("files", [])}
    app_packages = set((plan or {}).get("application", {}).get("packages", []))
    out = []
    for dest, size in files:
        if dest in baked:
            kind, name = "baked file", ""
        elif dest in ("main.py", "plan.json") or dest.startswith("__pycache__/main."):
            kind, name = "generated", ""
        else:
            name = module_of(dest)
            kind = "application" if name in app_packages else "library"
        out.append(Content(prefix + dest, size, kind, name))
    return out


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def summary(contents: Sequence[Content]) -> list[dict[str, Any]]:
    """Per kind: files, bytes, and the bytes of each named module or package (largest first)."""
    rows = []
    for kind, what in KINDS.items():
        items = [c for c in contents if c.kind == kind]
        if not items:
            continue
        names: dict[str, int] = {}
        for c in items:
            if c.name:
                names[c.name] = names.get(c.name, 0) + c.size
        rows.append({"kind": kind, "what": what, "files": len(items), "bytes": sum(c.size for c in items),
                     "names": dict(sorted(names.items(), key=lambda kv: (-kv[1], kv[0])))})
    return rows


def render(title: str, contents: Sequence[Content], facts: Mapping[str, str], files: bool) -> str:
    """The text ``unik inspect`` prints: facts, one block per kind, totals; every file with ``files``."""
    lines = [title]
    lines += [f"  {k}: {v}" for k, v in facts.items()]
    for row in summary(contents):
        count = f"{row['files']} file" + ("" if row["files"] == 1 else "s")
        lines.append(f"{row['kind']}: {count}, {_mb(row['bytes'])} — {row['what']}")
        names = row["names"]
        if names and not files:
            shown = [f"{n} {_mb(b)}" for n, b in list(names.items())[:12]]
            more = f", and {len(names) - 12} more" if len(names) > 12 else ""
            lines.append("    " + ", ".join(shown) + more)
        if files:
            for c in sorted((c for c in contents if c.kind == row["kind"]), key=lambda c: c.path):
                lines.append(f"    {c.size:>10}  {c.path}")
    total = sum(c.size for c in contents)
    lines.append(f"total: {len(contents)} files, {_mb(total)}")
    return "\n".join(lines) + "\n"


def to_json(target: str, directory: str, contents: Sequence[Content], facts: Mapping[str, str]) -> str:
    """``unik inspect --json``."""
    data = {"target": target, "artifact": directory, "facts": dict(facts), "summary": summary(contents),
            "total": {"files": len(contents), "bytes": sum(c.size for c in contents)},
            "files": [asdict(c) for c in sorted(contents, key=lambda c: (c.kind, c.path))]}
    return json.dumps(data, indent=2) + "\n"
