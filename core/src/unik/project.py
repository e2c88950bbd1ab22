"""The configure / build / run workflow of one application directory.

``configure`` composes the plan and writes ``_build/<target>/plan.json`` and
``main.py``; ``build`` hands the plan to the target's emitter, which writes
``dist/<name>-<target>/``; ``run`` hands that artifact to the target's runner.  A
configuration made before ``pyproject.toml`` or the plugins that compose and build it
changed (upgraded, or an editable one's sources edited: :mod:`unik.builders`) is stale
and is done again with the same options; an artifact whose inputs changed (its files,
those plugins) is rebuilt.

``unik run`` never rewrites the saved configuration: when its keys change the device
graph or a configure-time key (:attr:`unik.keys.Key.stage`), the application is
configured and built for that run in ``_build/<target>/run/``.  ``build`` and ``run``
say which target and configuration they use, and that a later ``configure`` failed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import metadata_stamp, settled, stat_stamp, write_atomic
from .errors import ConfigError, NotConfigured, ProjectNotFound, did_you_mean
from .keys import Key, KeyValues, Origin, layer_args
from .plan import Plan
from .progress import Progress, counted
from .target import Artifact, BuildContext, RunContext
from .version import DISTRIBUTION, __version__

#: The core a configuration was made by, in its stamp: another one configures again.
CORE = f"{DISTRIBUTION} {__version__}"

if TYPE_CHECKING:
    from .application import Application
    from .builders import Installed
    from .bundle import BundleFile
    from .plugins import PluginManager

# The composer, the code generator and the application loader are imported by
# configure (and by run when its options change the plan): a run of a fresh build
# needs none of them.

BUILD_DIR = "_build"
DIST_DIR = "dist"
CURRENT = "current"
STAMP = "stamp.json"
#: Where the target of a ``configure`` that failed is remembered (until one succeeds).
FAILED = "failed-configure"
#: ``_build/<target>/RUN_DIR``: the configuration and artifact of a ``unik run`` whose keys
#: change what is built.
RUN_DIR = "run"
#: The last inputs digest, with the stat of every file and directory it was made from.
INPUTS = "inputs.json"

KeyArgs = Mapping[str, list[str]]
#: A detached run's runner waits this long for a graceful stop: ``unik stop --timeout`` kills sooner.
DETACHED_STOP_GRACE_S = 86400.0


@dataclass
class Configuration:
    """What ``configure`` wrote for one target."""

    plan: Plan
    directory: Path
    key_args: dict[str, list[str]]

    def age(self) -> str:
        """How long ago it was written, for messages: ``5 min ago``."""
        try:
            seconds = time.time() - (self.directory / STAMP).stat().st_mtime
        except OSError:
            return "at an unknown time"
        return _ago(seconds)


def find_pyproject(start: Path) -> Path:
    """The nearest ``pyproject.toml`` with ``[tool.unik]`` at or above ``start``."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and "[tool.unik" in candidate.read_text():
            return candidate
    raise ProjectNotFound(
        f"no pyproject.toml with [tool.unik] in {start} or above: run `unik new NAME` to "
        f"create an application, or pass --project DIR"
    )


class Project:
    """One application directory and its ``_build`` and ``dist`` folders."""

    def __init__(self, pyproject: Path, plugins: PluginManager, progress: Progress | None = None):
        self.pyproject = pyproject.resolve()
        self.root = self.pyproject.parent
        self.plugins = plugins
        self.progress = progress or Progress()
        self._builders: dict[tuple[str, ...], tuple[list[Installed], dict[str, str]]] = {}

    @classmethod
    def find(cls, start: Path, plugins: PluginManager, progress: Progress | None = None) -> Project:
        """The project whose ``pyproject.toml`` is at or above ``start``."""
        return cls(find_pyproject(start), plugins, progress)

    # -- paths --------------------------------------------------------------------

    def build_dir(self, target: str) -> Path:
        """``_build/<target>``."""
        return self.root / BUILD_DIR / target

    @property
    def dist_dir(self) -> Path:
        """``dist``."""
        return self.root / DIST_DIR

    def current_target(self, target: str | None) -> str:
        """``target`` (an installed one, else :class:`UnknownTarget`), or the one configured last."""
        if target:
            self.plugins.target(target)
            return target
        current = self.root / BUILD_DIR / CURRENT
        if current.is_file():
            return current.read_text().strip()
        failed = self.failed_configure()
        if failed:
            raise NotConfigured(f"`unik configure -t {failed}` failed and no target is configured: "
                                f"fix what it said and configure again")
        raise NotConfigured("no target configured yet: run `unik configure -t TARGET` first")

    def failed_configure(self) -> str | None:
        """The target of the last ``configure`` if it failed (and none succeeded since)."""
        try:
            return (self.root / BUILD_DIR / FAILED).read_text().strip() or None
        except OSError:
            return None

    def configure_failed(self, target: str) -> str:
        """Remember that ``configure -t target`` failed; what the user should know about it."""
        try:
            (self.root / BUILD_DIR).mkdir(exist_ok=True)
            (self.root / BUILD_DIR / FAILED).write_text(target + "\n")
        except OSError:
            pass
        current = self.root / BUILD_DIR / CURRENT
        if not current.is_file():
            return ""
        previous = current.read_text().strip()
        stamp = self.build_dir(previous) / STAMP
        age = _ago(time.time() - stamp.stat().st_mtime) if stamp.is_file() else "earlier"
        return (f"the configuration for {previous} (made {age}) is still the current one: "
                f"`unik build` and `unik run` use it until a configure succeeds")

    def builders(self, plan: Plan) -> tuple[list[Installed], dict[str, str]]:
        """The installed distributions that make ``plan``'s configuration and artifact, and their stamps.

        The plan's distributions, its target's, and what they require
        (:func:`unik.builders.find`), with each one's stamp by name (its version, and for
        an editable install the stat of its source files); looked up once per command.
        """
        from . import builders

        names = tuple(sorted({*plan.distributions, plan.target_distribution} - {""}))
        if names not in self._builders:
            found = builders.find(names)
            self._builders[names] = (found, builders.stamps_by_name(found))
        return self._builders[names]

    # -- configure ----------------------------------------------------------------

    def load(self) -> Application:
        """Load the application."""
        from .application import Application

        return Application.load(self.pyproject)

    def all_keys(self, app: Application, target: str) -> list[Key]:
        """Every key the target, its providers and the application declare."""
        keys = dict(self.plugins.keys(target))
        for setting in app.settings:
            keys[setting.key.name] = setting.key
        return list(keys.values())

    def compose(self, target: str, key_args: KeyArgs, fresh: KeyArgs | None = None) -> Plan:
        """Compose the plan for ``target`` with ``key_args`` (nothing is written).

        Every value is checked; device bindings (``--block storage=disk.img``) must name
        a device of the plan when they are in ``pyproject.toml`` or ``fresh``, the values
        given just now (all of ``key_args`` when ``None``; a saved configuration's were
        checked when they were given).
        """
        from .compose import Implementation, TargetRef, check_bindings, compose

        app = self.load()
        tcls = type(self.plugins.target(target))
        self.check_target_tables(app)
        table = Origin(app.config_file, f"tool.unik.targets.{target}")
        empty = KeyValues(self.all_keys(app, target))
        # A plain value given replaces the table's bindings for that key (KeyValues.layered).
        keys = empty.with_args(app.key_defaults(target), table).layered(key_args)
        keys.check(tcls.keys)
        keys.check(s.key for s in app.settings)
        impls = [
            Implementation(cls, self.plugins.distribution("unik_register_providers", name))
            for name, cls in self.plugins.providers(target).items()
        ]
        ref = TargetRef(target, self.plugins.distribution("unik_register_targets", tcls.PLUGIN_NAME),
                        host_network=tcls.host_network, startup=tcls.startup)
        plan = compose(app, app.devices, impls, target=ref, keys=keys)
        check_bindings(empty.with_args(app.key_defaults(target), table).with_args(
            key_args if fresh is None else fresh), plan)
        plan = replace(plan, argv_syntax=self.plugins.carried_syntaxes(plan.distributions))
        return plan.with_contributions(self.plugins.configure(plan))

    def check_target_tables(self, app: Application) -> None:
        """Refuse a ``[tool.unik.targets.X]`` table for a target nobody provides (a typo, say).

        A table for a known target that is not installed here is fine: the project may
        be built for it elsewhere.
        """
        from .plugins import TARGET_DISTRIBUTIONS

        if set(app.targets) <= set(TARGET_DISTRIBUTIONS):
            return  # the usual tables: no need to load every target's plugin to know them
        known = set(self.plugins.targets()) | set(TARGET_DISTRIBUTIONS)
        for name in app.targets:
            if name not in known:
                raise ConfigError(
                    app.config_file, f"tool.unik.targets.{name}", None,
                    f"there is no target {name!r}{did_you_mean(name, known)}; "
                    f"targets: {', '.join(sorted(known))}",
                )

    def configure(self, target: str, key_args: KeyArgs, fresh: KeyArgs | None = None,
                  directory: Path | None = None) -> Configuration:
        """Compose and write ``plan.json``, ``main.py`` and the stamp (``fresh`` as for :meth:`compose`).

        Into ``_build/<target>``, which becomes the current configuration; or into
        ``directory`` (a run's own configuration), which changes nothing else.
        """
        from .codegen import generate_main

        plan = self.compose(target, key_args, fresh)
        self.plugins.target(target).check_plan(plan)
        out = directory or self.build_dir(target)
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "plan.json", plan.dumps())
        _write(out / "main.py", generate_main(plan))
        stamp = {"pyproject": _digest_file(self.pyproject), "key_args": dict(key_args),
                 "unik": CORE, "builders": self.builders(plan)[1]}
        _write(out / STAMP, json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        if directory is None:
            (self.root / BUILD_DIR / CURRENT).write_text(target + "\n")
            (self.root / BUILD_DIR / FAILED).unlink(missing_ok=True)
        _write(self.root / BUILD_DIR / ".gitignore", "*\n")
        return Configuration(plan, out, {k: list(v) for k, v in key_args.items()})

    def configuration(self, target: str | None) -> Configuration:
        """The current configuration, re-done first if it is stale."""
        target = self.current_target(target)
        out = self.build_dir(target)
        stamp_file = out / STAMP
        if not stamp_file.exists():
            raise NotConfigured(f"target {target!r} is not configured: run `unik configure -t {target}`")
        stamp = json.loads(stamp_file.read_text())
        key_args = stamp.get("key_args", {})
        if stamp.get("pyproject") != _digest_file(self.pyproject) or stamp.get("unik") != CORE:
            self.progress.info(f"{self.pyproject.name} changed since configure: configuring {target} again")
            return self.configure(target, key_args, fresh={})
        plan = Plan.loads((out / "plan.json").read_text())
        # The plugins that composed the plan and write the artifact: upgraded, or an
        # editable one's sources edited, they may compose or generate it differently.
        was, now = stamp.get("builders", {}), self.builders(plan)[1]
        if was != now:
            changed = sorted(n for n in {*was, *now} if was.get(n) != now.get(n))
            self.progress.info(f"{', '.join(changed)} changed since configure: configuring {target} again")
            return self.configure(target, key_args, fresh={})
        return Configuration(plan, out, key_args)

    # -- build ----------------------------------------------------------------------

    def artifact_dir(self, plan: Plan) -> Path:
        """``dist/<name>-<target>``."""
        return self.dist_dir / f"{plan.app.name}-{plan.target}"

    def inputs_digest(self, config: Configuration) -> str:
        """A digest of everything an artifact is built from.

        That is every file it bundles: the plan, the generated main, the application,
        unik and its plugins, the baked files; and the distributions that build it
        (:meth:`builders`: the target's emitter, the VM toolkit, C sources an image
        compiles), by version and, for an editable install, by the content of its source
        files.  The digest is remembered in ``_build/<target>/inputs.json`` with the stat of
        those files, of the directories they were listed from and of the installed
        distributions' metadata, and the builders' stamps; while none of them changed, it
        is not computed again.
        """
        from . import builders

        installed, held = self.builders(config.plan)
        remembered = config.directory / INPUTS
        try:
            data = json.loads(remembered.read_text())
            if data["stamp"] == _inputs_stamp(data["files"], data["dirs"]) and data["builders"] == held:
                return str(data["digest"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        from .bundle import runtime_inputs  # the file walk: not needed while the digest is remembered

        files, dirs = runtime_inputs(config.plan, config.directory)
        h = hashlib.sha256()
        for f in files:
            h.update(f.dest.encode() + b"\0" + _digest_file(f.source).encode())
        h.update(b"builders\0" + builders.digest(installed).encode())
        paths = sorted({str(f.source) for f in files})
        dir_paths = sorted({str(d) for d in dirs})
        stamp = _inputs_stamp(paths, dir_paths)
        if settled([*stamp, *builders.stamp(installed)]):
            data = {"digest": h.hexdigest(), "files": paths, "dirs": dir_paths, "stamp": stamp, "builders": held}
            try:
                write_atomic(remembered, json.dumps(data) + "\n")
            except OSError:  # only a cache
                pass
        return h.hexdigest()

    def build(self, target: str | None = None, dist_dir: Path | None = None,
              update: Iterable[str] = ()) -> Artifact:
        """Emit the artifact of the current configuration (``update``: pins of ``unik.lock`` to move on)."""
        config = self.configuration(target)
        self._warn_failed(config)
        return self._emit(config, dist_dir, update=update)

    def _warn_failed(self, config: Configuration) -> None:
        """Say so when a ``configure`` failed after the one in use was made."""
        failed = self.failed_configure()
        if failed:
            self.progress.warn(f"the last `unik configure -t {failed}` failed: using the {config.plan.target} "
                               f"configuration made {config.age()}")

    def _emit(self, config: Configuration, dist_dir: Path | None = None, why: str = "",
              update: Iterable[str] = ()) -> Artifact:
        """Emit the artifact of ``config`` into ``dist_dir`` (default ``dist``)."""
        plan = config.plan
        tgt = self.plugins.target(plan.target)
        ctx = BuildContext(
            root=self.root, build_dir=config.directory,
            dist_dir=(dist_dir or self.dist_dir).resolve(), progress=self.progress,
            plugins=self.plugins, update=frozenset(update),
        )
        from .bundle import runtime_files
        from .pydeps import ensure

        ensure(plan.app.dependencies, self.progress)  # pip's work shown as a step of its own
        with self.progress.step(f"building {plan.app.name} for {plan.target} "
                                f"({why or 'configured ' + config.age()})"):
            artifact = tgt.emit(plan, ctx)
        sizes = self._report_sizes(runtime_files(plan, config.directory))
        manifest = dict(artifact.manifest, inputs=self.inputs_digest(config), distributions=sizes)
        artifact = Artifact(artifact.target, artifact.directory, artifact.entry, manifest)
        artifact.save()
        self.progress.info(f"built {artifact.path}")
        return artifact

    def _report_sizes(self, files: list[BundleFile]) -> dict[str, dict[str, int]]:
        """Print what each distribution adds to the artifact; the same as JSON for its manifest."""
        from .bundle import size_report

        report = size_report(files)
        width = max(len(d.name) for d in report)
        self.progress.info("what the artifact carries, by distribution (as bundled, before compiling "
                           "and compressing):")
        for d in report:
            self.progress.info(f"  {d.name:<{width}} {_megabytes(d.bytes):>9} {counted(d.files, 'file'):>12}")
        total = sum(d.bytes for d in report)
        self.progress.info(f"  {'total':<{width}} {_megabytes(total):>9} "
                           f"{counted(sum(d.files for d in report), 'file'):>12}")
        return {d.name: {"files": d.files, "bytes": d.bytes} for d in report}

    # -- run --------------------------------------------------------------------------

    def run(self, target: str | None, key_args: KeyArgs, extra: Iterable[str] = (), *, detach: bool = False,
            name: str | None = None, dry_run: bool = False) -> int:
        """Run the artifact with ``key_args`` layered over the configured keys.

        If they change the device graph (``--net=socket`` on a TAP build) or a
        configure-time key (``--kernel``), the application is configured and built
        for this run in ``_build/<target>/run/``, and a notice says so; the saved
        configuration is left as it is.  The
        run is an instance ``unik ps`` lists (:mod:`unik.supervisor`): in the
        foreground, or detached (``detach``) with its console in a log; ``dry_run``
        prints the runner's command instead.
        """
        config = self.configuration(target)
        self._warn_failed(config)
        plan = config.plan
        tgt = self.plugins.target(plan.target)
        run_names = {k.name for k in tgt.run_keys}
        app_args = {k: v for k, v in key_args.items() if k not in run_names}
        # Every value is checked before anything is built or booted: the runner's keys
        # here, the others by composing with them.
        run_keys = KeyValues(tgt.run_keys).with_args({k: v for k, v in key_args.items() if k in run_names})
        run_keys.check(tgt.run_keys)
        dist_dir: Path | None = None
        if app_args:
            merged = layer_args(config.key_args, app_args, plan.keys.keys)
            changed = self.compose(plan.target, merged, fresh=app_args)
            why = _rebuild_reason(plan, changed)
            if why:
                directory = self.build_dir(plan.target) / RUN_DIR
                self.progress.info(f"{why}: configuring and building for this run in "
                                   f"{directory.relative_to(self.root)} (the saved configuration is unchanged)")
                config = self.configure(plan.target, merged, fresh=app_args, directory=directory)
                plan = config.plan
                dist_dir = directory / DIST_DIR
        keys = plan.keys.layered({k: v for k, v in app_args.items() if k in plan.keys.keys})
        ctx = RunContext(root=self.root, progress=self.progress, extra_args=list(extra), options=run_keys,
                         dry_run=dry_run)
        tgt.preflight(plan, keys, ctx)
        directory = (dist_dir or self.dist_dir) / f"{plan.app.name}-{plan.target}"
        fresh = False
        try:
            artifact = Artifact.load(directory)
            fresh = artifact.manifest.get("inputs") == self.inputs_digest(config)
        except NotConfigured:
            pass
        if not fresh:
            artifact = self._emit(config, dist_dir, "for this run" if dist_dir else "")
        else:
            where = "its own configuration" if dist_dir else f"configured {config.age()}"
            self.progress.info(f"running {plan.app.name} on {plan.target} ({where})")
        if dry_run:
            ctx.instance = name or plan.app.name
            return tgt.run(artifact, keys, ctx)
        from .instances import Registry
        from .supervisor import Launch, run_attached, run_detached

        def runner(instance: str, started: Callable[[Mapping[str, object]], None]) -> int:
            ctx.on_started, ctx.instance = started, instance
            if not tgt.reports_started:
                started({})
            return tgt.run(artifact, keys, ctx)

        launch = Launch(app=plan.app.name, target=plan.target, project=str(self.root),
                        artifact=str(artifact.directory), options={k: list(v) for k, v in key_args.items()},
                        addresses=_addresses(keys))
        if detach:
            ctx.stop_grace = DETACHED_STOP_GRACE_S
            return run_detached(Registry(), launch, name, runner, self.progress)
        return run_attached(Registry(), launch, name, runner)


def _addresses(keys: KeyValues) -> list[str]:
    """The guest addresses the keys give (``--ipv4``, for one device or all), for ``unik ps``."""
    if "ipv4" not in keys.keys:
        return []
    values = [keys.raw("ipv4"), *keys.bindings("ipv4").values()]
    return [v for v in dict.fromkeys(values) if v]


def _rebuild_reason(saved: Plan, wanted: Plan) -> str:
    """Why ``wanted`` needs its own build rather than ``saved``'s artifact ("" if it does not)."""
    if _structure(saved) != _structure(wanted):
        return "these options change the device graph"
    for key in wanted.keys.keys.values():
        if key.stage == "configure" and _given(saved, key) != _given(wanted, key):
            return f"{key.option} is built into the artifact"
    return ""


def _given(plan: Plan, key: Key) -> tuple[str | None, dict[str, str]]:
    """What ``plan`` says for ``key``: its value and bindings (the default if it has none)."""
    if key.name not in plan.keys.keys:
        return key.default, {}
    return plan.keys.raw(key.name), plan.keys.bindings(key.name)


def _megabytes(n: int) -> str:
    """``1.25 MB``, ``312 kB``: sizes in the build's report."""
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _ago(seconds: float) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 days ago``."""
    if seconds < 90:
        return f"{max(0, int(seconds))} s ago"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min ago"
    if seconds < 36 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def _structure(plan: Plan) -> str:
    data = plan.to_json()
    data.pop("keys")
    return json.dumps(data, sort_keys=True)


def _inputs_stamp(files: list[str], dirs: list[str]) -> list[list[object]]:
    return [*metadata_stamp(), *stat_stamp(files), *stat_stamp(dirs)]


def _digest_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path: Path, text: str) -> None:
    """Write only when the content changes (keeps mtimes stable for tools)."""
    if path.exists() and path.read_text() == text:
        return
    write_atomic(path, text)
