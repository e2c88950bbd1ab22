"""``compose(application, dependencies, implementations) -> Plan``: the heart of unik.

Resolution walks the application's devices in parameter order.  For each device it
picks a provider of the device's kind that serves the target and applies to the
keys given (the highest ``priority`` wins; a tie is an error unless the device table
names a ``provider``), asks it to configure the device, and resolves the provider's
needs the same way, depth first.  A device is connected after everything it needs,
so the post-order of the walk is the connect order.

Composition is deterministic and has no side effects: the same inputs give the same
plan, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .application import Application, DeviceSpec
from .errors import (
    AmbiguousProvider,
    ConfigError,
    CycleError,
    KindConflict,
    MissingProvider,
    did_you_mean,
)
from .keys import KeyValues
from .plan import AppInfo, Node, Plan
from .provider import BakedFile, Provider, Request
from .version import DISTRIBUTION, __version__

#: Where a missing device kind is usually found.
KIND_DISTRIBUTIONS = {
    "stack": "unik-lib-tcpip",
    "fs": "unik-lib-fat",
    "kv_rw": "unik-lib-fat",
    "tls": "unik-lib-tls",
    "random": "unik-lib-entropy",
    "entropy": "unik-lib-entropy",
}


@dataclass(frozen=True)
class Implementation:
    """A provider class and the distribution that registered it."""

    provider: type[Provider]
    distribution: str

    @property
    def name(self) -> str:
        """The provider's ``PLUGIN_NAME``."""
        return self.provider.PLUGIN_NAME


@dataclass(frozen=True)
class TargetRef:
    """The target being composed for."""

    name: str
    distribution: str
    #: Whether its artifacts can use the host's sockets (:attr:`unik.target.Target.host_network`).
    host_network: bool = True
    #: Its run-time modules ``main.py`` imports first (:attr:`unik.target.Target.startup`).
    startup: tuple[tuple[str, str], ...] = ()


@dataclass
class _Walk:
    app: Application
    specs: dict[str, DeviceSpec]
    implementations: Sequence[Implementation]
    target: TargetRef
    keys: KeyValues
    nodes: dict[str, Node] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    visiting: list[str] = field(default_factory=list)
    needed_by: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, BakedFile] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)


def compose(
    application: Application,
    dependencies: Sequence[DeviceSpec],
    implementations: Iterable[Implementation],
    *,
    target: TargetRef,
    keys: KeyValues,
) -> Plan:
    """Resolve the device graph of ``application`` for ``target``.

    :param application: the loaded application.
    :param dependencies: the devices it asks for (normally ``application.devices``).
    :param implementations: every installed provider, with its distribution.
    :param target: the target's name and distribution.
    :param keys: key values (defaults, per-target overrides and the user's options).
    :raises CompositionError: a device has no provider, two apply, or there is a cycle.
    :raises ConfigError: a device table is wrong (file, table and key named).
    """
    walk = _Walk(
        app=application,
        specs={d.name: d for d in dependencies},
        implementations=sorted(implementations, key=lambda i: i.name),
        target=target,
        keys=keys,
    )
    for spec in dependencies:
        _resolve(walk, spec.name, spec.kind, needed_by=f"application {application.name!r}")
    overrides = application.targets.get(target.name, {}).get("devices", {})
    for table, names in (("tool.unik.devices", application.tables),
                         (f"tool.unik.targets.{target.name}.devices", overrides)):
        for name in names:
            if name not in walk.nodes:
                raise ConfigError(
                    application.config_file, f"{table}.{name}", None,
                    f"{name!r} is not a device of this application on target {target.name!r}"
                    f"{did_you_mean(name, walk.nodes)} (devices: {', '.join(sorted(walk.nodes)) or 'none'})",
                )
    nodes = tuple(replace(walk.nodes[name], needed_by=tuple(walk.needed_by[name])) for name in walk.order)
    used_keys = {ref.key for n in nodes for ref in n.key_options.values()}
    used_keys |= {s.key.name for s in application.settings}
    used_keys |= {k for k in keys.values}
    dists = {DISTRIBUTION, target.distribution, *walk.packages, *(n.distribution for n in nodes)}
    return Plan(
        app=AppInfo(
            name=application.name,
            module=application.module,
            function=application.function,
            root=str(application.root),
            source_dirs=tuple(str(d) for d in application.source_dirs),
            packages=(application.package,),
            version=application.version,
            dependencies=application.dependencies,
            devices=tuple((d.name, d.name) for d in dependencies),
            settings=tuple((s.param, s.key.name) for s in application.settings),
            served=application.served,
        ),
        target=target.name,
        target_distribution=target.distribution,
        nodes=nodes,
        keys=keys.restricted(used_keys),
        files=tuple(walk.files[d] for d in sorted(walk.files)),
        distributions=tuple(sorted(d for d in dists if d)),
        unik_version=__version__,
        host_network=target.host_network,
        startup=target.startup,
    )


def _resolve(walk: _Walk, name: str, kind: str, needed_by: str) -> None:
    walk.needed_by.setdefault(name, [])
    if needed_by not in walk.needed_by[name]:
        walk.needed_by[name].append(needed_by)
    if name in walk.visiting:
        raise CycleError([*walk.visiting[walk.visiting.index(name):], name])
    if name in walk.nodes:
        existing = walk.nodes[name].kind
        if existing != kind:
            raise KindConflict(
                f"device {name!r} is a {existing} for {walk.needed_by[name][0]} but "
                f"{needed_by} needs it as a {kind}: rename one of them with "
                f"`use = {{...}}` in its device table"
            )
        return
    spec = walk.specs.get(name)
    if spec is not None and spec.kind != kind:
        raise KindConflict(
            f"device {name!r} is a {spec.kind} for the application but {needed_by} "
            f"needs it as a {kind}: rename the parameter, or rename the need with `use`"
        )
    walk.visiting.append(name)
    table, table_name = walk.app.device_table(name, walk.target.name)
    spec = DeviceSpec(name, kind, table)
    request = Request(
        device=name, kind=kind, target=walk.target.name, table=spec.options,
        table_name=table_name, config_file=walk.app.config_file,
        root=walk.app.root, keys=walk.keys,
    )
    impl = _choose(walk, spec, request, needed_by)
    provider = impl.provider
    _check_table(spec, provider, request)
    walk.keys.check(provider.keys)
    configured = provider.configure(request)
    for f in configured.files:
        other = walk.files.get(f.dest)
        if other is not None and other.source != f.source:
            raise ConfigError(
                walk.app.config_file, table_name, None,
                f"{f.dest} in the artifact would come from both {other.source} and {f.source}",
            )
        walk.files[f.dest] = f
    walk.packages.update(configured.packages)
    deps: dict[str, str] = {}
    for role, need in provider.needs.items():
        if role in spec.use and not isinstance(spec.use[role], str):
            raise ConfigError(walk.app.config_file, table_name, f"use.{role}", "must be a device name")
        dep = spec.use.get(role, need.default_name)
        _resolve(walk, dep, need.kind, needed_by=f"{name} ({provider.PLUGIN_NAME})")
        deps[role] = dep
    walk.visiting.pop()
    walk.nodes[name] = Node(
        name=name, kind=kind, provider=provider.PLUGIN_NAME,
        distribution=impl.distribution, implementation=provider.implementation,
        deps=deps, options=_sorted(configured.options),
        key_options=dict(sorted(configured.key_options.items())),
        notes=tuple(configured.notes), event_loop=provider.event_loop,
    )
    walk.order.append(name)


def _choose(walk: _Walk, spec: DeviceSpec, request: Request, needed_by: str) -> Implementation:
    candidates = [
        i for i in walk.implementations
        if i.provider.kind == spec.kind and i.provider.serves(walk.target.name)
    ]
    if spec.provider is not None:
        for impl in candidates:
            if impl.name == spec.provider:
                return impl
        names = ", ".join(i.name for i in candidates) or "none installed"
        raise ConfigError(
            request.config_file, request.table_name, "provider",
            f"no provider {spec.provider!r} of kind {spec.kind!r} for target "
            f"{walk.target.name!r} (available: {names})",
        )
    applicable = [i for i in candidates if i.provider.applies(request)]
    if not applicable:
        raise MissingProvider(spec.name, spec.kind, walk.target.name, needed_by,
                              _hint(spec.kind, walk.target.name, candidates))
    best = max(i.provider.priority for i in applicable)
    top = [i for i in applicable if i.provider.priority == best]
    if len(top) > 1:
        raise AmbiguousProvider(spec.name, spec.kind, [i.name for i in top], request.table_name)
    return top[0]


def _hint(kind: str, target: str, candidates: Sequence[Implementation]) -> str:
    if candidates:
        names = ", ".join(i.name for i in candidates)
        extra = KIND_DISTRIBUTIONS.get(kind)
        more = f"; or install `pip install {extra}`" if extra else ""
        return f"the installed providers ({names}) do not apply with the keys given{more}"
    if kind in KIND_DISTRIBUTIONS:
        return f"install one with `pip install {KIND_DISTRIBUTIONS[kind]}`"
    return f"target {target!r} does not provide {kind!r} devices; choose another target"


def _check_table(spec: DeviceSpec, provider: type[Provider], request: Request) -> None:
    allowed = {o.name for o in provider.options}
    for key in spec.options:
        if key not in allowed:
            known = ", ".join(sorted(allowed | {"kind", "provider", "use"}))
            raise request.error(
                key, f"unknown key for provider {provider.PLUGIN_NAME} (known: {known})"
            )


def check_bindings(keys: KeyValues, plan: Plan) -> None:
    """Refuse ``--block DEVICE=FILE`` for a device ``plan`` does not have (``stroage``).

    A device that some provider reads the key for must be one of those; a key that
    only the target's runner reads (virtio's ``--block``) must name a device of the plan.
    """
    nodes, target = plan.nodes, plan.target
    for name in sorted(keys.values):
        bound = keys.values[name].devices
        if not bound:
            continue
        takers = sorted(n.name for n in nodes if any(r.key == name and r.per_device for r in n.key_options.values()))
        devices = takers or sorted(n.name for n in nodes)
        for device in sorted(bound):
            if device not in devices:
                which = "devices that take it" if takers else "devices"
                raise keys.error(
                    name, f"{device}={bound[device]}: this application has no device {device!r} on target "
                    f"{target!r}{did_you_mean(device, devices)} ({which}: {', '.join(devices) or 'none'})", device,
                )


def _sorted(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in sorted(options)}
