"""The plan: what :func:`unik.compose` decided, as plain data.

A plan is a DAG of device instances in connect order, each with its provider, its
options and its dependencies, plus the application's entry point, the keys it uses,
the files to bake into the artifact and the distributions it needs at run time.  It
round-trips through JSON (``_build/<target>/plan.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any

from .keys import KeyValues
from .provider import BakedFile, KeyRef

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Node:
    """One device instance."""

    name: str
    kind: str
    provider: str
    distribution: str
    implementation: str
    deps: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    key_options: dict[str, KeyRef] = field(default_factory=dict)
    needed_by: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: The provider's :attr:`unik.provider.Provider.event_loop` (``""``: none).
    event_loop: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name, "kind": self.kind, "provider": self.provider,
            "distribution": self.distribution, "implementation": self.implementation,
            "deps": dict(self.deps), "options": dict(self.options),
            "key_options": {k: v.to_json() for k, v in self.key_options.items()},
            "needed_by": list(self.needed_by), "notes": list(self.notes),
            **({"event_loop": self.event_loop} if self.event_loop else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Node:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=d["name"], kind=d["kind"], provider=d["provider"],
            distribution=d["distribution"], implementation=d["implementation"],
            deps=dict(d.get("deps", {})), options=dict(d.get("options", {})),
            key_options={k: KeyRef(**v) for k, v in d.get("key_options", {}).items()},
            needed_by=tuple(d.get("needed_by", ())), notes=tuple(d.get("notes", ())),
            event_loop=d.get("event_loop", ""),
        )


@dataclass(frozen=True)
class AppInfo:
    """The application as the plan records it."""

    name: str
    module: str
    function: str
    root: str
    source_dirs: tuple[str, ...]
    packages: tuple[str, ...]
    version: str = "0"
    dependencies: tuple[str, ...] = ()
    #: Device parameters of the entry function, in order: (parameter, device name).
    devices: tuple[tuple[str, str], ...] = ()
    #: Keyword-only parameters that became keys: (parameter, key name).
    settings: tuple[tuple[str, str], ...] = ()
    #: ``asgi`` or ``aiohttp``: ``module:function`` names an application :mod:`unik.serve` serves.
    served: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name, "module": self.module, "function": self.function,
            "root": self.root, "source_dirs": list(self.source_dirs),
            "packages": list(self.packages), "version": self.version,
            "dependencies": list(self.dependencies),
            "devices": [list(p) for p in self.devices],
            "settings": [list(p) for p in self.settings],
            **({"served": self.served} if self.served else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AppInfo:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=d["name"], module=d["module"], function=d["function"], root=d["root"],
            source_dirs=tuple(d["source_dirs"]), packages=tuple(d["packages"]),
            version=d.get("version", "0"), dependencies=tuple(d.get("dependencies", ())),
            devices=tuple((a, b) for a, b in d.get("devices", ())),
            settings=tuple((a, b) for a, b in d.get("settings", ())),
            served=d.get("served", ""),
        )


@dataclass(frozen=True)
class Plan:
    """Everything configure decided for one application on one target."""

    app: AppInfo
    target: str
    target_distribution: str
    nodes: tuple[Node, ...]
    keys: KeyValues
    files: tuple[BakedFile, ...] = ()
    distributions: tuple[str, ...] = ()
    contributions: dict[str, Any] = field(default_factory=dict)
    unik_version: str = ""
    #: Whether the target's artifact can use the host's sockets (:attr:`unik.target.Target.host_network`).
    host_network: bool = True
    #: The target's run-time modules ``main.py`` imports first, with what each is for.
    startup: tuple[tuple[str, str], ...] = ()
    #: ``module:function`` of the command-line dialects the artifact reads, besides unik's
    #: (a plugin's ``unik_argv_syntax`` whose code the artifact carries: solo5's ``--net:service=tap0``).
    argv_syntax: tuple[str, ...] = ()

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def with_contributions(self, contributions: dict[str, Any]) -> Plan:
        """A copy carrying what ``unik_configure`` hooks contributed."""
        return replace(self, contributions=contributions)

    def portable(self) -> Plan:
        """The plan as an artifact carries it: the project's paths relative to its directory (``root`` is ".").

        The same project built from another directory gives the same artifact; a path
        outside the project stays as it is.
        """
        root = PurePath(self.app.root)

        def inside(path: str) -> str:
            p = PurePath(path)
            return (p.relative_to(root).as_posix() or ".") if p.is_relative_to(root) else path

        app = replace(self.app, root=".", source_dirs=tuple(inside(d) for d in self.app.source_dirs))
        files = tuple(BakedFile(inside(f.source), f.dest) for f in self.files)
        return replace(self, app=app, files=files)

    def to_json(self) -> dict[str, Any]:
        """JSON form (the content of ``plan.json``)."""
        return {
            "format": PLAN_FORMAT,
            "unik_version": self.unik_version,
            "target": self.target,
            "target_distribution": self.target_distribution,
            "application": self.app.to_json(),
            "devices": [n.to_json() for n in self.nodes],
            "keys": self.keys.to_json(),
            "files": [{"source": f.source, "dest": f.dest} for f in self.files],
            "distributions": list(self.distributions),
            "contributions": self.contributions,
            **({} if self.host_network else {"host_network": False}),
            **({"startup": [list(s) for s in self.startup]} if self.startup else {}),
            **({"argv_syntax": list(self.argv_syntax)} if self.argv_syntax else {}),
        }

    def dumps(self) -> str:
        """Deterministic JSON text."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        """Inverse of :meth:`to_json`."""
        return cls(
            app=AppInfo.from_json(d["application"]),
            target=d["target"],
            target_distribution=d.get("target_distribution", ""),
            nodes=tuple(Node.from_json(n) for n in d["devices"]),
            keys=KeyValues.from_json(d["keys"]),
            files=tuple(BakedFile(f["source"], f["dest"]) for f in d.get("files", ())),
            distributions=tuple(d.get("distributions", ())),
            contributions=dict(d.get("contributions", {})),
            unik_version=d.get("unik_version", ""),
            host_network=d.get("host_network", True),
            startup=tuple((str(m), str(why)) for m, why in d.get("startup", ())),
            argv_syntax=tuple(d.get("argv_syntax", ())),
        )

    @classmethod
    def loads(cls, text: str) -> Plan:
        """Parse ``plan.json`` text."""
        return cls.from_json(json.loads(text))
