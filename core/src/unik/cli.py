"""The ``unik`` command."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from .errors import BadKey, UnikError, did_you_mean
from .instances_cli import add_commands as add_instance_commands
from .keys import Key
from .plugins import PluginManager
from .progress import Progress, counted
from .version import API_VERSION, __version__

if TYPE_CHECKING:
    from .project import Project

# The modules of single commands (the composer, the application loader, the graph
# printer, the scaffold) are imported by those commands: every command, `unik run`
# above all, starts sooner for not loading the others'.

DESCRIPTION = """\
unik composes a Python application with library implementations of the OS services
it needs (TCP/IP, filesystems, TLS, randomness) and one target's devices, and emits a
Unix process, a VM unikernel or a sandboxed process.

typical use:
  unik new hello && cd hello
  unik configure -t unix          compose the device graph, write _build/unix/
  unik build                      emit dist/hello-unix/
  unik run                        run it (keys like --net can be overridden)
  unik describe --dot | dot -Tsvg > graph.svg
"""


def _add_key_options(parser: argparse.ArgumentParser, keys: Sequence[Key], shown: Collection[str] | None) -> None:
    """Every key as an option; help lists only those in ``shown`` (all when ``None``)."""
    group = parser.add_argument_group("keys (from the target, its libraries and the application)")
    for key in sorted(keys, key=lambda k: k.name):
        helptext = key.help
        if key.default is not None:
            helptext += f" (default: {key.default})"
        if key.per_device and not key.metavar:
            helptext += "; DEVICE=VALUE for one device"
        if key.choices:
            helptext += f"; one of {', '.join(key.choices)}"
        if key.stage == "configure":
            helptext += " [built into the artifact: another value given to run builds for that run]"
        if shown is not None and key.name not in shown:
            helptext = argparse.SUPPRESS
        flag: dict[str, Any] = {"nargs": "?", "const": "true"} if key.type == "bool" else {}
        group.add_argument(key.option, dest=f"key:{key.name}", action="append",
                           metavar=key.metavar or key.type.upper(), help=helptext, **flag)


def _key_args(ns: argparse.Namespace) -> dict[str, list[str]]:
    return {
        name[4:]: values for name, values in vars(ns).items()
        if name.startswith("key:") and values
    }


def _app_keys(ns_project: str | None) -> list[Key]:
    """The application's own keys, when a project is at hand (for parsing and --help)."""
    from .application import Application
    from .project import find_pyproject

    try:
        pyproject = find_pyproject(Path(ns_project or "."))
        return [s.key for s in Application.load(pyproject).settings]
    except UnikError:
        return []


def build_parser(pm: PluginManager, keys: Sequence[Key], shown: Collection[str] | None = None,
                 plugin_commands: bool = True) -> argparse.ArgumentParser:
    """The argument parser, with ``keys`` as options of ``configure`` and ``run``.

    Their help lists the keys named in ``shown`` (all when ``None``).  Without
    ``plugin_commands`` only unik's own commands are there (:func:`_add_plugin_commands`
    adds the plugins' when the command is none of them).
    """
    parser = argparse.ArgumentParser(
        prog="unik", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"unik {__version__} (plugin API {API_VERSION})")
    parser.add_argument("-C", "--project", metavar="DIR", help="application directory (default: search upwards from .)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("new", help="create a new application (or, with --plugin, a plugin)",
                       description="Create NAME/ with a runnable application; with --plugin, a plugin distribution "
                       "(entry point, UNIK_API, a provider with a C part, tests on the conformance suite).")
    p.add_argument("--plugin", action="store_true", help="create a plugin distribution instead of an application")
    p.add_argument("name")
    p.add_argument("--template", default="hello", metavar="NAME",
                   help="hello (an entry function, the default) or asgi (a FastAPI application under uvicorn)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("configure", help="compose the device graph for a target",
                       description="Compose the device graph and write _build/TARGET/plan.json and main.py.")
    p.add_argument("-t", "--target", default="unix", help="target (default: unix; see `unik targets`)")
    _add_key_options(p, keys, shown)
    p.set_defaults(func=cmd_configure)

    p = sub.add_parser("build", help="emit the artifact of the configured target",
                       description="Emit the artifact into dist/NAME-TARGET/ "
                       "(configures again if pyproject.toml changed).")
    p.add_argument("-t", "--target", help="target (default: the one configured last)")
    p.add_argument("--dist", metavar="DIR", help="output directory (default: dist)")
    p.add_argument("--update-kernel", action="store_true",
                   help="take the current guest kernel and pin it in unik.lock (VM targets; else the pinned one)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="run the built artifact",
                       description="Run the artifact, building it first if it is missing or stale. "
                       "Keys given here override the configured ones; arguments after -- go to the target's runner.")
    p.add_argument("-t", "--target", help="target (default: the one configured last)")
    p.add_argument("-d", "--detach", action="store_true",
                   help="run in the background: unik ps lists it, unik logs shows its console, unik stop stops it")
    p.add_argument("--name", help="the instance's name in unik ps (default: the application's, made unique)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the command that would run (QEMU, xl, the tender or the process), shell-quoted")
    _add_key_options(p, keys, shown)
    p.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("describe", help="show the device graph",
                       description="Show the configured device graph as a table, or as Graphviz with --dot.")
    p.add_argument("-t", "--target", help="target (default: the one configured last)")
    p.add_argument("--dot", action="store_true", help="print Graphviz dot source")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("query", help="print what configure decided",
                       description="plan: the plan as JSON; packages: distributions the artifact needs; "
                       "files: files configure generated and files baked into the artifact.")
    p.add_argument("what", choices=["plan", "packages", "files", "main"])
    p.add_argument("-t", "--target", help="target (default: the one configured last)")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("inspect", help="list what an artifact holds",
                       description="List what the built artifact holds by kind: the kernel and its modules, the "
                       "init, Python and the standard-library modules, the application, unik and its libraries, "
                       "baked files, with sizes and totals. Nothing is built.")
    p.add_argument("path", nargs="?", metavar="ARTIFACT",
                   help="an artifact directory (dist/NAME-TARGET; default: the configured target's)")
    p.add_argument("-t", "--target", help="target (default: the one configured last)")
    p.add_argument("-l", "--files", action="store_true", help="list every file with its size")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("plugins", help="list installed plugins as JSON",
                       description="List installed plugins with versions and hooks (failed ones with their error).")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("targets", help="list available targets and what each provides")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--keys-table", action="store_true",
                   help="print which keys each target has and when they take effect, as a Markdown table")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("doctor", help="check this host for what a target needs",
                       description="Run the target's host checks (tools, devices, privileges) and say what is "
                       "missing; exit status 1 when a required check fails.")
    p.add_argument("-t", "--target", action="append", help="target to check (repeatable; default: every target)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("clean", help="remove _build/ and dist/")
    p.set_defaults(func=cmd_clean)

    add_instance_commands(sub)

    if plugin_commands:
        pm.add_commands(sub)
    return parser


def _project(ns: argparse.Namespace) -> Project:
    from .project import Project

    return Project.find(Path(ns.project or "."), ns.pm, ns.progress)


def cmd_new(ns: argparse.Namespace) -> int:
    """``unik new``."""
    if ns.plugin:
        from .scaffold_plugin import new_plugin

        root = new_plugin(ns.name, Path(ns.project or "."))
        print(f"created {root}\nnext: cd {root} && pip install '.[test]' && pytest && python -m build --wheel")
        return 0
    from .scaffold import new_application

    root = new_application(ns.name, Path(ns.project or "."), ns.template)
    run = "unik run --publish 127.0.0.1:8000:8000" if ns.template == "asgi" else "unik run"
    target = "virtio" if ns.template == "asgi" else "unix"
    print(f"created {root}\nnext: cd {root} && unik configure -t {target} && unik build && {run}")
    return 0


def cmd_configure(ns: argparse.Namespace) -> int:
    """``unik configure``."""
    project = _project(ns)
    try:
        config = project.configure(ns.target, _key_args(ns))
    except UnikError as exc:
        still = project.configure_failed(ns.target)
        if still:  # printed after the error by main()
            exc.__notes__ = [*getattr(exc, "__notes__", []), still]  # type: ignore[attr-defined]
        raise
    ns.progress.info(f"configured {config.plan.app.name} for {ns.target}: {counted(len(config.plan.nodes), 'device')}, "
                     f"{config.directory / 'main.py'}")
    return 0


def cmd_build(ns: argparse.Namespace) -> int:
    """``unik build``."""
    _project(ns).build(ns.target, Path(ns.dist) if ns.dist else None, ["kernel"] if ns.update_kernel else [])
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    """``unik run``."""
    return _project(ns).run(ns.target, _key_args(ns), ns.extra, detach=ns.detach, name=ns.name,
                            dry_run=ns.dry_run)


def cmd_describe(ns: argparse.Namespace) -> int:
    """``unik describe``."""
    from .describe import to_dot, to_text

    plan = _project(ns).configuration(ns.target).plan
    sys.stdout.write(to_dot(plan) if ns.dot else to_text(plan))
    return 0


def cmd_query(ns: argparse.Namespace) -> int:
    """``unik query``."""
    config = _project(ns).configuration(ns.target)
    plan = config.plan
    if ns.what == "plan":
        sys.stdout.write(plan.dumps())
    elif ns.what == "packages":
        print("\n".join(plan.distributions))
    elif ns.what == "main":
        sys.stdout.write((config.directory / "main.py").read_text())
    else:
        for name in ("plan.json", "main.py"):
            print(config.directory / name)
        for f in plan.files:
            print(f"{f.dest}\t{f.source}")
    return 0


def cmd_inspect(ns: argparse.Namespace) -> int:
    """``unik inspect``."""
    from .inventory import render, to_json
    from .target import Artifact

    if ns.path:
        directory = Path(ns.path)
        directory = directory.parent if directory.is_file() else directory
    else:
        project = _project(ns)
        directory = project.artifact_dir(project.configuration(ns.target).plan)
    artifact = Artifact.load(directory.resolve())
    contents, facts = ns.pm.target(artifact.target).inspect(artifact)
    if ns.json:
        sys.stdout.write(to_json(artifact.target, str(artifact.directory), contents, facts))
    else:
        sys.stdout.write(render(f"{artifact.directory} ({artifact.target})", contents, facts, ns.files))
    return 0


def cmd_plugins(ns: argparse.Namespace) -> int:
    """``unik plugins``."""
    print(json.dumps(ns.pm.describe(), indent=2))
    return 0


def _targets_json(pm: PluginManager) -> list[dict[str, Any]]:
    rows = []
    providers = pm.providers()
    for name, tcls in sorted(pm.targets().items()):
        provides: dict[str, list[str]] = {}
        for pname, pcls in sorted(providers.items()):
            if pcls.serves(name):
                provides.setdefault(pcls.kind, []).append(pname)
        rows.append({
            "name": name,
            "distribution": pm.distribution("unik_register_targets", name),
            "description": tcls.description,
            "provides": dict(sorted(provides.items())),
            "keys": [k.to_json() for k in sorted(pm.keys(name).values(), key=lambda k: k.name) if not k.internal],
        })
    return rows


def cmd_targets(ns: argparse.Namespace) -> int:
    """``unik targets``."""
    if ns.keys_table:
        from .keytable import keys_table

        sys.stdout.write(keys_table(ns.pm))
        return 0
    rows = _targets_json(ns.pm)
    if ns.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no targets installed: pip install unik-target-unix")
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['distribution']}): {row['description']}")
        for kind, names in row["provides"].items():
            print(f"    {kind:16} {', '.join(names)}")
        for key in row["keys"]:
            print(f"    --{key['name'].replace('_', '-'):15} {key['help']}")
    return 0


def doctor(pm: PluginManager, names: Sequence[str] | None, out: TextIO) -> int:
    """Print the host checks of the targets ``names`` (all when ``None``); 1 if a required one fails."""
    failed = False
    for name in names or sorted(pm.targets()):
        checks = list(pm.target(name).doctor())
        if not checks:
            print(f"{name}: nothing to check", file=out)
            continue
        print(f"{name}:", file=out)
        for check in checks:
            mark = "ok" if check.ok else ("missing" if check.required else "warning")
            print(f"  [{mark}] {check.name}" + (f": {check.detail}" if check.detail else ""), file=out)
            if not check.ok and check.fix:
                print(f"           -> {check.fix}", file=out)
            failed = failed or (check.required and not check.ok)
    return 1 if failed else 0


def cmd_doctor(ns: argparse.Namespace) -> int:
    """``unik doctor``."""
    return doctor(ns.pm, ns.target, sys.stdout)


def cmd_clean(ns: argparse.Namespace) -> int:
    """``unik clean``."""
    from .project import BUILD_DIR

    project = _project(ns)
    for d in (project.root / BUILD_DIR, project.dist_dir):
        if d.exists():
            shutil.rmtree(d)
            ns.progress.info(f"removed {d}")
    return 0


class _Peek(NamedTuple):
    """What ``main`` needs to know before parsing: the options depend on the command and target."""

    command: str | None
    project: str | None
    target: str | None
    help: bool


def _peek(argv: Sequence[str]) -> _Peek:
    """The subcommand, ``--project`` and ``--target`` values and whether help is asked for."""
    command = project = target = None
    asks_help = False
    it = iter(argv)
    for arg in it:
        if arg == "--":
            break
        if arg in ("-C", "--project"):
            project = next(it, None)
        elif arg.startswith("--project="):
            project = arg.split("=", 1)[1]
        elif arg in ("-t", "--target"):
            target = next(it, None)
        elif arg.startswith("--target="):
            target = arg.split("=", 1)[1]
        elif arg.startswith("-t") and not arg.startswith("--"):
            target = arg[2:]
        elif arg in ("-h", "--help"):
            asks_help = True
        elif not arg.startswith("-") and command is None:
            command = arg
    return _Peek(command, project, target, asks_help)


#: Options of the parser itself and of ``run``, besides the keys.
_OPTIONS = frozenset({"-C", "--project", "-q", "--quiet", "--version", "-t", "--target", "-d", "--detach",
                      "--name", "--dry-run"})


def _known_options(pm: PluginManager, argv: Sequence[str], keys: dict[str, Key]) -> bool:
    """Whether every option in ``argv`` (up to ``--``) is spelt out and none is an application key's.

    ``unik run`` then parses the same without the application's keys, and skips
    importing the application (and what it imports) to learn them; help, an
    abbreviation or an unknown option loads them.
    """
    known = _OPTIONS | {k.option for k in keys.values()}
    for arg in pm.rewrite_argv(argv, keys):
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-" and arg.split("=", 1)[0] not in known:
            return False
    return True


def _check_project_dir(project: str | None) -> None:
    """Refuse ``-C DIR`` when DIR is not a directory, before any command looks into it."""
    if project is None:
        return
    path = Path(project)
    if not path.exists():
        raise UnikError(f"-C {project}: the directory {path.absolute()} does not exist")
    if not path.is_dir():
        raise UnikError(f"-C {project}: {path.absolute()} is not a directory (give the application's directory)")


def _configured_target(project: str | None) -> str | None:
    """The target configured last in the project at hand, if any."""
    from .project import BUILD_DIR, CURRENT, find_pyproject

    try:
        current = find_pyproject(Path(project or ".")).parent / BUILD_DIR / CURRENT
        return current.read_text().strip() or None
    except (UnikError, OSError):
        return None


def _plan_keys(pm: PluginManager, project: str | None, target: str, run: bool) -> set[str] | None:
    """The keys that apply to the plan of ``target`` (``None`` when there is none to ask).

    That is the target's keys (its runner's too with ``run``), the application's, and
    those of every provider of a device kind in the plan: the configured plan, or for
    ``configure`` without one the plan composed from ``pyproject.toml`` alone.
    """
    from .plan import Plan
    from .project import BUILD_DIR, Project, find_pyproject

    try:
        pyproject = find_pyproject(Path(project or "."))
        saved = pyproject.parent / BUILD_DIR / target / "plan.json"
        if saved.is_file():
            plan = Plan.loads(saved.read_text())
        elif not run:
            plan = Project(pyproject, pm).compose(target, {})
        else:
            return None
    except (UnikError, OSError, ValueError):
        return None
    tcls = type(pm.target(target))
    kinds = {node.kind for node in plan.nodes}
    names = {k.name for k in tcls.keys} | {key for _, key in plan.app.settings}
    if run:
        names |= {k.name for k in tcls.run_keys}
    for pcls in pm.providers(target).values():
        if pcls.kind in kinds and pcls.serves(target):
            names |= {k.name for k in pcls.keys}
    return names


def _command_keys(pm: PluginManager, peek: _Peek, argv: Sequence[str]) -> tuple[dict[str, Key], set[str] | None]:
    """The keys ``configure`` or ``run`` accepts for the target at hand, and those its help shows.

    ``configure`` takes its target's keys (``-t``, default unix); ``run`` those of the
    target configured last (or ``-t``) and its runner's.  Help shows the ones that
    apply to the plan (:func:`_plan_keys`).  Internal keys (the spt tender's ``--fd``) are
    never options of ``unik``.
    """
    if peek.command not in ("configure", "run"):
        return {}, None
    run = peek.command == "run"
    target = peek.target or ("unix" if not run else _configured_target(peek.project))
    if target is not None:
        pm.target(target)  # an unknown target is the first thing to say
    keys = {n: k for n, k in pm.keys(target, run=run).items() if not k.internal}
    if not run or not _known_options(pm, argv, keys):
        keys.update({k.name: k for k in _app_keys(peek.project)})
    shown = _plan_keys(pm, peek.project, target, run) if peek.help and target else None
    return keys, shown


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """The parser's subcommands."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers by name."""
    return dict(_subparsers(parser).choices)


def _unrecognized(parser: argparse.ArgumentParser, pm: PluginManager, peek: _Peek, argv: Sequence[str],
                  rest: Sequence[str]) -> None:
    """Say what is wrong with an option nobody knows: another target's key, or a misspelt one."""
    options = [a for a in rest if a.startswith("-") and a != "-"]
    if not options:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    option = options[0].split("=", 1)[0]
    command = peek.command or ""
    before = command not in argv or argv.index(options[0]) < argv.index(command)
    sub = parser if before else _commands(parser).get(command, parser)
    if command in ("configure", "run") and sub is not parser:
        name = option.lstrip("-").replace("-", "_")
        target = peek.target or ("unix" if command == "configure" else _configured_target(peek.project))
        every = pm.keys(None, run=True)
        if name in every and every[name].internal:
            raise BadKey(f"{option} is set by the target's own machinery, not on the command line")
        others = sorted(t for t in pm.targets() if t != target and name in pm.keys(t, run=True))
        if others and target:
            raise BadKey(f"{option} is a key of target {', '.join(others)}, not of {target}: "
                         f"see `unik {command} -t {target} --help` for the keys of {target}")
    if sub is not parser and any(option in a.option_strings for a in parser._actions):
        raise UnikError(f"{option} is an option of unik itself: give it before the command (`unik {option} "
                        f"{command} ...`)")
    known = [s for a in sub._actions for s in a.option_strings if a.help != argparse.SUPPRESS]
    what = f"unik {command}" if sub is not parser else "unik"
    raise BadKey(f"unknown option {option} for `{what}`{did_you_mean(option, known)}; see `{what} --help`")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unik`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pm = PluginManager()
    try:
        peek = _peek(argv)
        _check_project_dir(peek.project)
        keys, shown = _command_keys(pm, peek, argv)
        parser = build_parser(pm, list(keys.values()), shown, plugin_commands=False)
        if peek.command not in _commands(parser):  # `unik --help`, or a plugin's command: the plugins add theirs
            pm.add_commands(_subparsers(parser))
        commands = _commands(parser)
        if peek.command is not None and peek.command not in commands:
            raise UnikError(f"unknown command {peek.command!r}{did_you_mean(peek.command, commands)}; "
                            f"commands: {', '.join(commands)} (see `unik --help`)")
        if peek.command is None:  # only options: argparse would say a command is missing, not what is wrong
            top = {s for a in parser._actions for s in a.option_strings}
            wrong = [a for a in argv if a.startswith("-") and a.split("=", 1)[0] not in top and a not in commands]
            if wrong:
                _unrecognized(parser, pm, peek, argv, wrong)
        ns, rest = parser.parse_known_args(pm.rewrite_argv(argv, keys))
        if rest:
            _unrecognized(parser, pm, peek, argv, rest)
        ns.pm = pm
        ns.progress = Progress(quiet=ns.quiet)
        return int(ns.func(ns))
    except UnikError as exc:
        print(f"unik: error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(f"unik: note: {note}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
