"""The plugin manager: a typed wrapper around pluggy (the tox pattern).

Plugins are modules found through the entry-point group ``unik``.  Each is loaded on
its own: one that fails to import, or that declares an incompatible ``UNIK_API``, is
reported and skipped (fatal with ``UNIK_STRICT_PLUGINS=1``).  ``UNIK_LOAD_PLUGINS``
(comma-separated entry-point or distribution names) loads only those;
``UNIK_DISABLE_PLUGINS`` skips those.  Registration hooks are collected into
dictionaries that refuse duplicate names, naming both plugins.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import pluggy

from . import builtin, hookspecs
from .cache import cache_dir, metadata_stamp, settled, stat_stamp, write_atomic
from .errors import DuplicateName, IncompatiblePlugin, PluginError, UnknownTarget, did_you_mean
from .provider import KIND_NAMES, Provider
from .target import Target
from .version import API_VERSION, DISTRIBUTION, __version__

if TYPE_CHECKING:
    from .hookspecs import ImageContents
    from .kernel import KernelProvider
    from .keys import ArgvSyntax, Key
    from .plan import Plan

# importlib.metadata and packaging are imported where they are needed: together they
# took a quarter of the start of every command, and the entry points come from a cache.

#: Registration hooks and the typed method that collects each.
_REGISTRATIONS = {
    "unik_register_targets": "targets",
    "unik_register_providers": "providers",
    "unik_register_kernels": "kernels",
}

#: The distribution a user should install for a target name nobody provides.
TARGET_DISTRIBUTIONS = {
    "unix": "unik-target-unix", "virtio": "unik-target-virtio", "xen": "unik-target-xen",
    "spt": "unik-target-solo5", "hvt": "unik-target-solo5",
}


@dataclass
class PluginInfo:
    """What ``unik plugins`` shows for one plugin."""

    name: str
    module: str
    distribution: str
    version: str
    api: str = ""
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    #: The modules it declares run inside an artifact (``UNIK_RUNTIME``; ``None``: not declared).
    runtime: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "name": self.name, "module": self.module, "distribution": self.distribution,
            "version": self.version, "api": self.api, "hooks": self.hooks,
        }
        if self.runtime is not None:
            out["runtime"] = self.runtime
        if self.error is not None:
            out["error"] = self.error
        return out


def _names(env: Mapping[str, str], var: str) -> set[str] | None:
    value = env.get(var)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


class PluginManager:
    """Loads plugins once and answers typed questions about what they register."""

    def __init__(
        self,
        *,
        entry_points: bool = True,
        env: Mapping[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._env = dict(os.environ if env is None else env)
        self._use_entry_points = entry_points
        self._warn = warn or (lambda msg: print(f"unik: warning: {msg}", file=sys.stderr))
        self._loaded = False
        self._eps: list[EntryPoint] | None = None
        self._tried: set[str] = set()
        self._index = _HookIndex({})
        #: Plugins by position: the entry points' sorted order, then direct registrations.
        self._order: dict[str, int] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginInfo] = []
        #: What each plugin's registration hooks returned (checked), by hook and plugin, once each.
        self._registered: dict[str, dict[str, list[Any]]] = {hook: {} for hook in _REGISTRATIONS}
        #: Which plugin registered each name, by hook, of the plugins asked so far.
        self._owners: dict[str, dict[str, str]] = {hook: {} for hook in _REGISTRATIONS}
        self.register(builtin, name="unik", distribution=DISTRIBUTION, version=__version__)

    @property
    def strict(self) -> bool:
        """Whether a plugin that fails to load is fatal (``UNIK_STRICT_PLUGINS``)."""
        return self._env.get("UNIK_STRICT_PLUGINS", "") not in ("", "0", "false", "no")

    # -- loading ------------------------------------------------------------------

    def register(
        self, plugin: ModuleType | object, name: str, distribution: str = "", version: str = ""
    ) -> None:
        """Register a plugin object directly (tests use this; see :mod:`unik.testing`)."""
        api = getattr(plugin, "UNIK_API", "")
        if name != "unik":
            _check_api(name, api)
        runtime = _runtime_modules(name, plugin)
        if not version and distribution:
            from importlib import metadata

            try:
                version = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                version = ""
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # a hook implementation whose arguments the spec lacks
            why = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise PluginError(f"plugin {name!r}: {why}; see unik.hookspecs for the hooks and their arguments") from exc
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            why = _unknown_hooks(name, self._pm, plugin)
            self._pm.unregister(plugin)
            raise PluginError(why) from exc
        hooks = sorted(
            h.name for h in self._pm.get_hookcallers(plugin) or () if h.name.startswith("unik_")
        )
        self._order.setdefault(name, 0 if name == "unik" else 1_000_000 + len(self._order))
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.plugins[name] = PluginInfo(name, module, distribution, version, api, hooks, runtime=runtime)

    def load(self, hook: str | None = None) -> PluginManager:
        """Load the entry-point plugins (each once) that may implement ``hook`` (all: ``None``); return ``self``.

        Commands load plugins lazily: which hooks an installed plugin implements is
        remembered (:class:`_HookIndex`), so ``unik --help`` imports the plugins that add
        commands and not every target's.  A plugin not remembered, or whose module changed,
        is loaded.  Each plugin is still imported and registered on its own here rather than
        by pluggy's ``load_setuptools_entrypoints``: one that fails to import or declares an
        incompatible ``UNIK_API`` must be reported and skipped without taking down the
        others, and the entry points come from a cache instead of importlib.metadata.
        """
        if self._loaded or not self._use_entry_points:
            self._loaded = True
            return self
        eps = self._entry_points()
        self._load_each(ep for ep in eps if hook is None or not self._index.lacks(ep, hook))
        self._loaded = hook is None or len(self._tried) == len(eps)
        self._index.save()
        return self

    def _entry_points(self) -> list[EntryPoint]:
        """The wanted entry points (read once), the hook index with them."""
        if self._eps is None:
            self._eps = self._wanted_entry_points() if self._use_entry_points else []
            self._index = _HookIndex.read() if self._eps else _HookIndex({})
        return self._eps

    def _load_each(self, eps: Iterable[EntryPoint]) -> None:
        """Import and register each of ``eps`` not tried yet, on its own (see :meth:`load`)."""
        for ep in eps:
            if ep.name in self._tried:
                continue
            self._tried.add(ep.name)
            dist, version = ep.dist, ep.version
            try:
                module = ep.load()
                self.register(module, name=ep.name, distribution=dist, version=version)
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                self.failures.append(PluginInfo(ep.name, ep.value, dist, version, error=why))
                if self.strict:
                    raise PluginError(
                        f"plugin {ep.name!r} ({dist or ep.value}) failed to load: {why}"
                    ) from exc
                self._warn(
                    f"plugin {ep.name!r} ({dist or ep.value}) failed to load and is skipped: "
                    f"{why}; set UNIK_DISABLE_PLUGINS={ep.name} to silence this, or "
                    f"UNIK_STRICT_PLUGINS=1 to make it fatal"
                )
            else:
                self._index.remember(ep, module, self.plugins[ep.name].hooks)

    def _wanted_entry_points(self) -> list[EntryPoint]:
        """The installed entry points, by name, once each, less those the switches leave out."""
        only = _names(self._env, "UNIK_LOAD_PLUGINS")
        skip = _names(self._env, "UNIK_DISABLE_PLUGINS") or set()
        seen: set[str] = set()
        wanted: list[EntryPoint] = []
        for ep in sorted(entry_points(), key=lambda e: e.name):
            if ep.name in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(ep.name)
            names = {ep.name, ep.dist}
            if (only is not None and not names & only) or names & skip:
                continue
            wanted.append(ep)
        self._order.update({ep.name: i for i, ep in enumerate(wanted, start=1)})
        return wanted

    def _impls(self, hook: str) -> list[Any]:
        """``hook``'s implementations, its plugins loaded, in entry-point order whatever order they loaded in."""
        self.load(hook)
        impls = getattr(self._pm.hook, hook).get_hookimpls()
        return sorted(impls, key=lambda impl: self._order.get(impl.plugin_name, 0))

    # -- registration hooks -------------------------------------------------------

    def _collect(self, hook: str, what: str, check: Callable[[str, Any], None],
                 want: Callable[[str, list[str] | None], bool] | None = None) -> dict[str, Any]:
        """What ``hook`` registers, by name: of every plugin, or with ``want`` of those that register a wanted name.

        ``want(name, targets)`` says whether a registration (a provider serving
        ``targets``, ``None`` for all) is wanted.  Which names an installed plugin
        registers is remembered (:class:`_HookIndex`): with ``want`` only the plugins
        that registered a wanted name last time, those not remembered (new, upgraded or
        edited ones) and those sharing a name with them (a duplicate is refused all the
        same) are loaded and asked.  A caller that does not find what it wants asks
        every plugin (``want=None``): the index spares work, never changes an answer.
        """
        done = self._registered[hook]
        eps = self._entry_points()
        while True:
            names = {cls.PLUGIN_NAME for classes in done.values() for cls in classes}
            pending = [ep for ep in eps if ep.name not in done and not self._index.lacks(ep, hook)
                       and (want is None or self._index.may_register(ep, hook, want, names))]
            self._load_each(pending)
            asked = {ep.name for ep in pending}
            by_name = {ep.name: ep for ep in eps}
            for impl in getattr(self._pm.hook, hook).get_hookimpls():
                if impl.plugin_name in done or (impl.plugin_name in by_name and impl.plugin_name not in asked):
                    continue  # asked already, or an entry point's plugin loaded for another hook and not wanted
                classes = list(impl.function() or ())
                for cls in classes:
                    check(impl.plugin_name, cls)
                    if hook == "unik_register_providers":
                        _check_runtime(self.plugins[impl.plugin_name], cls)
                done[impl.plugin_name] = classes
                if impl.plugin_name in by_name:
                    self._index.remember_registered(by_name[impl.plugin_name], hook, classes)
            for name in asked - set(done):  # failed to load, or implements no such hook after all
                done[name] = []
            if not pending:
                break
        self._index.save()
        found: dict[str, Any] = {}
        owner = self._owners[hook]
        for plugin in sorted(done, key=lambda p: self._order.get(p, 0)):
            for cls in done[plugin]:
                name = cls.PLUGIN_NAME
                if name in found:
                    raise DuplicateName(what, name, owner[name], plugin)
                found[name], owner[name] = cls, plugin
        return found

    def owner(self, hook: str, name: str) -> PluginInfo:
        """The plugin that registered ``name`` through ``hook``."""
        if name not in self._owners[hook]:
            getattr(self, _REGISTRATIONS[hook])()
        return self.plugins[self._owners[hook][name]]

    def targets(self) -> dict[str, type[Target]]:
        """Installed targets by name (every plugin that registers one is loaded)."""
        return self._collect("unik_register_targets", "target", _check_class(Target))

    def providers(self, target: str | None = None) -> dict[str, type[Provider]]:
        """Installed device providers by name; with ``target``, at least every one that serves it.

        Then only the plugins that register a provider serving ``target`` are loaded
        (their other providers come too: a caller picks with ``Provider.serves``).
        """
        want = None if target is None else (lambda name, targets: targets is None or target in targets)
        return self._collect("unik_register_providers", "provider", _check_provider, want)

    def kernels(self) -> dict[str, type[KernelProvider]]:
        """Installed kernel providers (for VM targets) by name."""
        return self._collect("unik_register_kernels", "kernel provider", _check_named)

    def target(self, name: str) -> Target:
        """An instance of the target ``name``, or :class:`UnknownTarget` saying what to do.

        Only the plugins that registered ``name`` last time are loaded, unless it is not
        among their targets (then every plugin is asked).
        """
        targets = self._collect("unik_register_targets", "target", _check_class(Target),
                                lambda registered, _: registered == name)
        if name not in targets:
            targets = self.targets()
        if name not in targets:
            installed = ", ".join(sorted(targets)) or "none"
            if name in TARGET_DISTRIBUTIONS:
                raise UnknownTarget(f"target {name!r} is not installed (installed: {installed}); install it "
                                    f"with `pip install {TARGET_DISTRIBUTIONS[name]}`")
            hint = did_you_mean(name, [*targets, *TARGET_DISTRIBUTIONS])
            raise UnknownTarget(f"unknown target {name!r}{hint}; installed: {installed}"
                                + ("" if hint else f"; install a plugin providing target {name!r}"))
        return targets[name]()

    def distribution(self, hook: str, name: str) -> str:
        """The distribution that registered ``name`` through ``hook``."""
        info = self.owner(hook, name)
        return info.distribution or info.name

    def keys(self, target: str | None = None, run: bool = False) -> dict[str, Key]:
        """Keys declared by targets and providers (of ``target`` only, if given).

        With ``run``, the targets' runner keys (``--mem``...) are included too.
        """
        keys: dict[str, Key] = {}
        owners: dict[str, str] = {}
        sources: list[tuple[str, Iterable[Key]]] = []
        if target is None:
            targets = self.targets()
        else:
            try:
                targets = {target: type(self.target(target))}
            except UnknownTarget:
                targets = {}
        for name, tcls in targets.items():
            sources.append((f"target {name}", tcls.keys))
            if run:
                sources.append((f"target {name} (runner)", tcls.run_keys))
        for name, pcls in self.providers(target).items():
            if target is None or pcls.serves(target):
                sources.append((f"provider {name}", pcls.keys))
        for source, declared in sources:
            for key in declared:
                if key.name in keys and keys[key.name] != key:
                    if keys[key.name].type != key.type or keys[key.name].per_device != key.per_device:
                        raise DuplicateName("key", key.name, owners[key.name], source)
                    continue
                keys.setdefault(key.name, key)
                owners.setdefault(key.name, source)
        return keys

    # -- contribution hooks -------------------------------------------------------

    def image_contents(self, plan: Plan) -> dict[str, ImageContents]:
        """What each plugin needs inside a VM image, by plugin name."""
        out: dict[str, ImageContents] = {}
        for impl in self._impls("unik_image_contents"):
            answer = cast("ImageContents | None", impl.function(plan=plan))
            if answer is not None:
                out[impl.plugin_name] = answer
        return dict(sorted(out.items()))

    def configure(self, plan: Plan) -> dict[str, Any]:
        """Contributions of ``unik_configure`` hooks, by plugin name."""
        out: dict[str, Any] = {}
        for impl in self._impls("unik_configure"):
            contribution = cast("Mapping[str, Any] | None", impl.function(plan=plan))
            if contribution is not None:
                out[impl.plugin_name] = dict(contribution)
        return dict(sorted(out.items()))

    def argv_syntaxes(self) -> list[tuple[PluginInfo, ArgvSyntax]]:
        """Every plugin's command-line dialect (``unik_argv_syntax``), with the plugin, in registration order."""
        out = []
        for impl in self._impls("unik_argv_syntax"):
            syntax = cast("ArgvSyntax | None", impl.function())
            if syntax is not None:
                out.append((self.plugins[impl.plugin_name], syntax))
        return out

    def rewrite_argv(self, argv: Sequence[str], keys: Mapping[str, Key]) -> list[str]:
        """``argv`` in unik's syntax: every plugin's dialect (``unik_argv_syntax``) rewritten."""
        out = list(argv)
        if not keys:  # a dialect spells keys: no plugin need load for a command without them
            return out
        for _, syntax in self.argv_syntaxes():
            out = syntax(out, keys)
        return out

    def carried_syntaxes(self, distributions: Iterable[str]) -> tuple[str, ...]:
        """``module:function`` of the dialects an artifact with ``distributions`` carries the code of.

        The generated ``main.py`` hands them to :func:`unik.runtime.main`, so the artifact
        run by itself (hvt's guest, a ``.pyz``) reads its command line as ``unik run`` does.
        """
        carried = set(distributions)
        return tuple(f"{syntax.__module__}:{syntax.__qualname__}" for info, syntax in self.argv_syntaxes()
                     if (info.distribution or info.name) in carried)

    def add_commands(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        """Let plugins add subcommands."""
        for impl in reversed(self._impls("unik_add_commands")):  # pluggy's call order, as before
            impl.function(subparsers=subparsers)

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin, loaded or failed, as JSON (``unik plugins``)."""
        self.load()
        rows = [p.to_json() for p in self.plugins.values()] + [f.to_json() for f in self.failures]
        return sorted(rows, key=lambda r: r["name"])


class EntryPoint(NamedTuple):
    """An entry point of the group ``unik``, with its distribution's name and version."""

    name: str
    value: str
    dist: str
    version: str

    def load(self) -> Any:
        """Import the module and return the object the entry point names."""
        match = _ENTRY_POINT.match(self.value)
        if match is None:
            raise ValueError(f"invalid entry point {self.value!r}")
        module = importlib.import_module(match.group("module"))
        attrs = filter(None, (match.group("attr") or "").split("."))
        return functools.reduce(getattr, attrs, module)


class _HookIndex:
    """What each installed plugin implements and registers, remembered from the last time it loaded.

    Kept in ``$XDG_CACHE_HOME/unik/plugin-hooks-*.json``.  A record counts only for the
    same entry point (name, value, distribution and version) whose module file has the
    same ``[path, mtime_ns, size, inode]``, so an upgraded or edited plugin is loaded
    again.  Under ``registered``, what each registration hook returned: the names, with
    the targets each serves (a target its own name, a provider its ``targets``, ``None``
    for every target), and the stamps of the modules their classes (and bases) are
    defined in, which an edit there voids.
    """

    def __init__(self, records: dict[str, Any]) -> None:
        self.records = records
        self._changed = False

    @classmethod
    def read(cls) -> _HookIndex:
        """The index in the cache (empty if missing or unreadable)."""
        try:
            records = json.loads(_hook_index_path().read_text())
            return cls(records if isinstance(records, dict) else {})
        except (OSError, ValueError):
            return cls({})

    def _record(self, ep: EntryPoint) -> dict[str, Any] | None:
        """``ep``'s record if it is still valid."""
        record = self.records.get(ep.name)
        if not isinstance(record, dict) or record.get("entry_point") != list(ep):
            return None
        if not record.get("file") or stat_stamp([record["file"][0]]) != [record["file"]]:
            return None
        return record

    def lacks(self, ep: EntryPoint, hook: str) -> bool:
        """Whether ``ep``'s plugin is known not to implement ``hook`` (then it need not load for it)."""
        record = self._record(ep)
        return record is not None and hook not in record.get("hooks", ())

    def may_register(self, ep: EntryPoint, hook: str, want: Callable[[str, list[str] | None], bool],
                     names: set[str]) -> bool:
        """Whether ``ep``'s plugin may register, through ``hook``, a name ``want`` wants or one of ``names``.

        ``True`` unless its remembered registrations say otherwise.
        """
        record = self._record(ep)
        registered = (record or {}).get("registered", {}).get(hook)
        try:
            if registered is None or stat_stamp(f[0] for f in registered["files"]) != registered["files"]:
                return True
            return any(want(name, targets) or name in names for name, targets in registered["names"].items())
        except (KeyError, TypeError, IndexError, AttributeError):  # a record of another shape
            return True

    def remember(self, ep: EntryPoint, module: object, hooks: list[str]) -> None:
        """Record the hooks of ``ep``'s plugin, just loaded from ``module``."""
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            return
        file = stat_stamp([path])[0]
        record = {"entry_point": list(ep), "file": file, "hooks": sorted(hooks)}
        old = self.records.get(ep.name)
        if isinstance(old, dict) and {k: old.get(k) for k in record} == record:
            return  # the same plugin: what it registered stays remembered
        if settled([file]):
            self.records[ep.name] = record
            self._changed = True

    def remember_registered(self, ep: EntryPoint, hook: str, classes: Sequence[Any]) -> None:
        """Record what ``ep``'s plugin (remembered by :meth:`remember`) registered through ``hook``."""
        record = self._record(ep)
        if record is None:
            return
        names = {cls.PLUGIN_NAME: _serves(hook, cls) for cls in classes}
        paths = sorted({path for cls in classes for base in getattr(cls, "__mro__", (cls,))
                        if isinstance(path := getattr(sys.modules.get(base.__module__), "__file__", None), str)})
        files = stat_stamp(paths)
        entry = {"names": names, "files": files}
        if record.get("registered", {}).get(hook) != entry and settled(files):
            record.setdefault("registered", {})[hook] = entry
            self._changed = True

    def save(self) -> None:
        """Write the index if it changed (only a cache: a failure is ignored)."""
        if self._changed:
            self._changed = False
            try:
                write_atomic(_hook_index_path(), json.dumps(self.records, sort_keys=True))
            except OSError:
                pass


def _serves(hook: str, cls: Any) -> list[str] | None:
    """The targets a registered class serves, as the hook index remembers them."""
    if hook == "unik_register_targets":
        return [cls.PLUGIN_NAME]
    targets = getattr(cls, "targets", None) if hook == "unik_register_providers" else None
    return None if targets is None else sorted(targets)


def _hook_index_path() -> Path:
    where = sys.executable + "\0" + "\0".join(sys.path)
    return cache_dir() / f"plugin-hooks-{zlib.crc32(where.encode()):08x}.json"


#: ``module[:attr[.attr]][extras]``, as importlib.metadata reads an entry point's value.
_ENTRY_POINT = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


def entry_points() -> list[EntryPoint]:
    """The ``unik`` entry points installed on ``sys.path``, in importlib.metadata's order.

    Reading every distribution's metadata (and importing importlib.metadata) cost
    more than the rest of a short command, so the answer is cached in
    ``$XDG_CACHE_HOME/unik`` under :func:`unik.cache.metadata_stamp`.
    """
    stamp = [[sys.executable], *metadata_stamp()]
    where = sys.executable + "\0" + "\0".join(sys.path)
    cache = cache_dir() / f"entry-points-{zlib.crc32(where.encode()):08x}.json"  # the stamp decides
    try:
        data = json.loads(cache.read_text())
        if data["stamp"] == stamp:
            return [EntryPoint(*ep) for ep in data["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from importlib import metadata

    found = [
        EntryPoint(ep.name, ep.value, ep.dist.name if ep.dist is not None else "",
                   ep.dist.version if ep.dist is not None else "")
        for ep in metadata.entry_points(group="unik")
    ]
    if settled(stamp):
        try:
            write_atomic(cache, json.dumps({"stamp": stamp, "entry_points": found}))
        except OSError:  # only a cache
            pass
    return found


def _unknown_hooks(name: str, pm: pluggy.PluginManager, plugin: object) -> str:
    """Why ``plugin`` was refused by pluggy's ``check_pending``: the hooks no spec declares."""
    unknown = sorted(h.name for h in pm.get_hookcallers(plugin) or () if not h.has_spec())
    known = sorted(n for n in dir(hookspecs) if n.startswith("unik_"))
    what = "; ".join(f"{hook}{did_you_mean(hook, known) or ' is not a unik hook'}" for hook in unknown)
    return (f"plugin {name!r} implements unknown hook(s): {what} (the hooks are {', '.join(known)}; "
            f"mark a hook of another project's with its own HookimplMarker, or optionalhook=True)")


def _check_api(name: str, api: str) -> None:
    if not api:
        raise IncompatiblePlugin(
            f"plugin {name!r} does not declare UNIK_API (the core API range it supports); "
            f"this core provides API {API_VERSION}"
        )
    inside = _api_in(api)
    if inside is None:
        raise IncompatiblePlugin(f"plugin {name!r} has an invalid UNIK_API {api!r}")
    if not inside:
        raise IncompatiblePlugin(
            f"plugin {name!r} supports unik API {api}, but this core provides API "
            f"{API_VERSION}: upgrade the plugin or install a matching unik"
        )


#: A comparison with a plain release number (``>=1.0``), the usual clause of ``UNIK_API``.
_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|<|>)\s*(\d+(?:\.\d+)*)\s*")
_COMPARE: dict[str, Callable[[int], bool]] = {
    ">=": lambda c: c >= 0, "<=": lambda c: c <= 0, "==": lambda c: c == 0,
    "!=": lambda c: c != 0, "<": lambda c: c < 0, ">": lambda c: c > 0,
}


def _api_in(api: str) -> bool | None:
    """Whether :data:`API_VERSION` satisfies the PEP 440 specifier ``api`` (``None``: invalid).

    Comparisons with release numbers are decided here, as PEP 440 does for a release
    version; anything else is left to packaging (importing it took longer than
    loading all the plugins).
    """
    clauses = [_CLAUSE.fullmatch(c) for c in api.split(",")]
    if all(clauses):
        mine = [int(n) for n in API_VERSION.split(".")]
        for m in cast("list[re.Match[str]]", clauses):
            theirs = [int(n) for n in m[2].split(".")]
            width = max(len(mine), len(theirs))
            a, b = (tuple(v + [0] * (width - len(v))) for v in (mine, theirs))
            if not _COMPARE[m[1]]((a > b) - (a < b)):
                return False
        return True
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import Version

    try:
        return Version(API_VERSION) in SpecifierSet(api)
    except InvalidSpecifier:
        return None


def _runtime_modules(name: str, plugin: object) -> list[str] | None:
    """The plugin's ``UNIK_RUNTIME``: the modules of it that run inside an artifact."""
    declared = getattr(plugin, "UNIK_RUNTIME", None)
    if declared is None:
        return None
    if isinstance(declared, str) or not all(isinstance(m, str) and m for m in declared):
        raise PluginError(f"plugin {name!r}: UNIK_RUNTIME must be a tuple of module names "
                          f"(e.g. ('my_plugin.device',)), not {declared!r}")
    return list(declared)


def _check_runtime(info: PluginInfo, cls: Any) -> None:
    """A provider's implementation runs inside the artifact: its module must be declared so."""
    module = cls.implementation.split(":")[0]
    if info.runtime is None or module in info.runtime or not module.startswith(info.module.split(".")[0] + "."):
        return  # undeclared, declared, or another distribution's module (a target reusing a library's device)
    raise PluginError(
        f"plugin {info.name!r}: provider {cls.PLUGIN_NAME!r} is implemented by {module}, which its UNIK_RUNTIME "
        f"does not list: add {module!r} to UNIK_RUNTIME in {info.module}"
    )


def _check_named(plugin: str, cls: Any) -> None:
    if not isinstance(getattr(cls, "PLUGIN_NAME", None), str):
        raise PluginError(f"plugin {plugin!r} registered {cls!r}, which has no PLUGIN_NAME")


def _check_class(base: type) -> Callable[[str, Any], None]:
    def check(plugin: str, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(
                f"plugin {plugin!r} registered {cls!r}, which is not a {base.__name__} subclass"
            )
        _check_named(plugin, cls)

    return check


def _check_provider(plugin: str, cls: Any) -> None:
    _check_class(Provider)(plugin, cls)
    if cls.kind not in KIND_NAMES:
        raise PluginError(
            f"plugin {plugin!r}: provider {cls.PLUGIN_NAME!r} has unknown kind {cls.kind!r} "
            f"(known: {', '.join(sorted(KIND_NAMES))})"
        )
    if ":" not in getattr(cls, "implementation", ""):
        raise PluginError(
            f"plugin {plugin!r}: provider {cls.PLUGIN_NAME!r} needs implementation = 'module:Class'"
        )
