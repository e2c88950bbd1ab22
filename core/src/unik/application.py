"""Loading an application: ``[tool.unik]`` plus its entry function's signature.

The entry function's parameters annotated with device protocols become devices named
after the parameters; its keyword-only parameters with defaults become keys
(``port: int = 8080`` is ``--port``).  ``[tool.unik.devices.NAME]`` configures a
device, ``[tool.unik.targets.TARGET]`` overrides keys and device tables per target.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ProjectNotFound, did_you_mean
from .keys import Key, KeyType

if TYPE_CHECKING:
    import inspect

# The TOML parser, inspect and the device protocols (asyncio) are imported by
# Application.load: `unik run` needs nothing from here (unik.project.find_pyproject finds the file).

#: Keys of a device table that the composer reads itself (the rest go to the provider).
RESERVED_DEVICE_KEYS = ("kind", "provider", "use")
_TOP_KEYS = {"name", "main", "asgi", "aiohttp", "devices", "targets", "source"}
#: The keys of [tool.unik] naming what runs: exactly one is given.
_ENTRY_KEYS = ("main", "asgi", "aiohttp")
_SETTING_TYPES: dict[type, KeyType] = {int: "int", str: "str", float: "float", bool: "bool"}


@dataclass(frozen=True)
class DeviceSpec:
    """A device the application asks for, with its ``[tool.unik.devices.NAME]`` table."""

    name: str
    kind: str
    table: Mapping[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> str | None:
        """The provider chosen explicitly in the table, if any."""
        value = self.table.get("provider")
        return value if isinstance(value, str) else None

    @property
    def use(self) -> Mapping[str, str]:
        """Renamed needs: ``use = {network = "uplink"}``."""
        value = self.table.get("use", {})
        return value if isinstance(value, Mapping) else {}

    @property
    def options(self) -> dict[str, Any]:
        """The table without the composer's own keys."""
        return {k: v for k, v in self.table.items() if k not in RESERVED_DEVICE_KEYS}


@dataclass(frozen=True)
class Setting:
    """A keyword-only parameter of the entry function, configured as a key."""

    param: str
    key: Key


@dataclass(frozen=True)
class Application:
    """An application as described by its ``pyproject.toml``."""

    name: str
    root: Path
    pyproject: Path
    module: str
    function: str
    source_dirs: tuple[Path, ...]
    version: str
    dependencies: tuple[str, ...]
    devices: tuple[DeviceSpec, ...]
    settings: tuple[Setting, ...]
    tables: Mapping[str, Mapping[str, Any]]
    targets: Mapping[str, Mapping[str, Any]]
    #: ``asgi`` or ``aiohttp`` for an application served by :mod:`unik.serve` (``module:function``
    #: then names the application object), ``""`` for an entry function.
    served: str = ""

    @property
    def config_file(self) -> str:
        """The pyproject path as shown in error messages."""
        return str(self.pyproject)

    @property
    def package(self) -> str:
        """The top-level import package of the entry module."""
        return self.module.split(".")[0]

    def device_table(self, name: str, target: str) -> tuple[Mapping[str, Any], str]:
        """The device table of ``name`` with the target's overrides, and its table name."""
        base = dict(self.tables.get(name, {}))
        override = self.targets.get(target, {}).get("devices", {}).get(name)
        if override:
            base.update(override)
            return base, f"tool.unik.targets.{target}.devices.{name}"
        return base, f"tool.unik.devices.{name}"

    def key_defaults(self, target: str) -> dict[str, list[str]]:
        """Key values set in ``[tool.unik.targets.TARGET]``, as command-line texts."""
        out: dict[str, list[str]] = {}
        for key, value in self.targets.get(target, {}).items():
            if key == "devices":
                continue
            values = value if isinstance(value, list) else [value]
            out[key.replace("-", "_")] = [_text(v) for v in values]
        return out

    @classmethod
    def load(cls, pyproject: Path) -> Application:
        """Read ``pyproject`` and inspect the entry function it names."""
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

        pyproject = pyproject.resolve()
        where = str(pyproject)
        try:
            data = tomllib.loads(pyproject.read_text())
        except FileNotFoundError:
            raise ProjectNotFound(f"{pyproject} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(where, "", None, f"not valid TOML: {exc}") from None
        tool = data.get("tool", {}).get("unik")
        if not isinstance(tool, dict):
            raise ProjectNotFound(
                f"{pyproject} has no [tool.unik] table: run `unik new NAME` to start an "
                f"application, or add [tool.unik] with `main = \"package:function\"` (or `asgi = \"package:app\"`)"
            )
        for key in tool:
            if key not in _TOP_KEYS:
                raise ConfigError(where, "tool.unik", key, f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
        project = data.get("project", {})
        name = tool.get("name") or project.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(where, "tool.unik", "name", "missing: the application's name")
        entry_key = _entry_key(where, tool)
        main = tool[entry_key]
        what = "module:function" if entry_key == "main" else "module:attribute"
        if not isinstance(main, str) or main.count(":") != 1 or not all(main.split(":")):
            raise ConfigError(where, "tool.unik", entry_key, f'missing or not "{what}": {main!r}')
        module, function = main.split(":", 1)
        root = pyproject.parent
        source = tool.get("source")
        if source is not None:
            source_dirs: tuple[Path, ...] = (root / source,)
        else:
            source_dirs = (root / "src",) if (root / "src").is_dir() else (root,)
        tables = _tables(where, tool.get("devices", {}), "tool.unik.devices")
        targets = _tables(where, tool.get("targets", {}), "tool.unik.targets")
        deps = project.get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise ConfigError(where, "project", "dependencies", "must be a list of requirement strings")
        if deps:  # most applications have none: spare them importing pydeps (and the bundle's walker)
            from .pydeps import check

            check(where, deps)
        if entry_key == "main":
            params = _entry_parameters(where, source_dirs, module, function)
            devices, settings = _classify(where, main, params, tables, name)
        else:
            _check_served(where, entry_key, source_dirs, module, function)
            devices, settings = _served_devices(entry_key, tables)
        return cls(
            name=name, root=root, pyproject=pyproject, module=module, function=function,
            source_dirs=source_dirs, version=str(project.get("version", "0")),
            dependencies=tuple(deps), devices=devices, settings=settings,
            tables=tables, targets=targets, served="" if entry_key == "main" else entry_key,
        )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tables(where: str, value: Any, table: str) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ConfigError(where, table, None, "must be a table")
    for key, sub in value.items():
        if not isinstance(sub, dict):
            raise ConfigError(where, f"{table}.{key}", None, "must be a table")
    return {k: dict(v) for k, v in value.items()}


def _entry_key(where: str, tool: Mapping[str, Any]) -> str:
    """Which of ``main``, ``asgi`` and ``aiohttp`` the table gives (exactly one)."""
    given = [k for k in _ENTRY_KEYS if k in tool]
    if len(given) > 1:
        raise ConfigError(where, "tool.unik", given[1],
                          f"give one of {', '.join(given)}: {given[0]} already says what runs")
    if not given:
        raise ConfigError(where, "tool.unik", "main",
                          'missing: main = "module:function" (an entry function), asgi = "module:app" (an ASGI '
                          'application, served by uvicorn) or aiohttp = "module:make_app" (an aiohttp application)')
    return given[0]


def _check_served(where: str, key: str, source_dirs: tuple[Path, ...], module: str, attribute: str) -> None:
    """The module named by ``[tool.unik] asgi``/``aiohttp`` exists in the sources and binds ``attribute``.

    It is read, not imported: its imports (FastAPI, aiohttp) are the application's
    dependencies, which pip installs for the artifact, not into the environment running unik.
    """
    import ast

    parts = module.split(".")
    if not all(p.isidentifier() for p in parts) or not attribute.isidentifier():
        raise ConfigError(where, "tool.unik", key, f"{module}:{attribute} is not a module and a name in it")
    candidates = [d.joinpath(*parts[:-1], f"{parts[-1]}.py") for d in source_dirs]
    candidates += [d.joinpath(*parts, "__init__.py") for d in source_dirs]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        dirs = ", ".join(str(d) for d in source_dirs)
        raise ConfigError(where, "tool.unik", key, f"there is no module {module!r} in {dirs}")
    try:
        tree = ast.parse(path.read_text(), str(path))
    except SyntaxError as exc:
        raise ConfigError(where, "tool.unik", key, f"{path} is not valid Python: {exc}") from None
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in node.names):
                return  # whatever the star brings: the import at run time will tell
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif not isinstance(node, ast.Expr):
            return  # bound under an if or a try: too dynamic to judge here
    if attribute not in bound:
        raise ConfigError(where, "tool.unik", key,
                          f"{path} does not define {attribute!r} at its top level{did_you_mean(attribute, bound)}")


def _served_devices(
    key: str, tables: Mapping[str, Mapping[str, Any]]
) -> tuple[tuple[DeviceSpec, ...], tuple[Setting, ...]]:
    """The devices and keys of an application served by :mod:`unik.serve`."""
    from .serve import DEVICES, keys_for

    devices = tuple(DeviceSpec(name, kind, tables.get(name, {})) for name, kind in DEVICES.items())
    return devices, tuple(Setting(k.name, k) for k in keys_for(key))


def _entry_parameters(
    where: str, source_dirs: tuple[Path, ...], module: str, function: str
) -> list[inspect.Parameter]:
    """Import ``module`` from the application's sources and read ``function``'s signature.

    Modules imported from the sources are removed again, so that loading two
    applications in one process never mixes them up.
    """
    import inspect

    paths = [str(d) for d in source_dirs]
    before = set(sys.modules)
    sys.path[:0] = paths
    try:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(where, "tool.unik", "main", f"cannot import {module!r}: {exc}") from None
        fn = getattr(mod, function, None)
        if fn is None:
            raise ConfigError(where, "tool.unik", "main", f"{module!r} has no {function!r}")
        if not inspect.iscoroutinefunction(fn):
            raise ConfigError(
                where, "tool.unik", "main", f"{module}:{function} must be an `async def` function"
            )
        try:
            sig = inspect.signature(fn, eval_str=True)
        except NameError as exc:
            raise ConfigError(where, "tool.unik", "main", f"cannot evaluate an annotation: {exc}") from None
        return list(sig.parameters.values())
    finally:
        for p in paths:
            if p in sys.path:
                sys.path.remove(p)
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if any(file.startswith(p) for p in paths):
                del sys.modules[name]


def _classify(
    where: str,
    main: str,
    params: list[inspect.Parameter],
    tables: Mapping[str, Mapping[str, Any]],
    app: str,
) -> tuple[tuple[DeviceSpec, ...], tuple[Setting, ...]]:
    from .devices import KINDS, kind_of

    devices: list[DeviceSpec] = []
    settings: list[Setting] = []
    known = ", ".join(sorted(KINDS))
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConfigError(where, "tool.unik", "main", f"{main}: *{p.name} parameters are not supported")
        if p.kind == p.KEYWORD_ONLY:
            settings.append(_setting(where, main, p, app))
            continue
        table = tables.get(p.name, {})
        annotated = kind_of(p.annotation) if p.annotation is not p.empty else None
        declared = table.get("kind")
        if declared is not None and declared not in KINDS:
            raise ConfigError(
                where, f"tool.unik.devices.{p.name}", "kind", f"unknown kind {declared!r} (known: {known})"
            )
        if annotated and declared and annotated != declared:
            raise ConfigError(
                where, f"tool.unik.devices.{p.name}", "kind",
                f"{declared!r} contradicts the annotation of parameter {p.name!r} ({annotated})",
            )
        kind = annotated or declared
        if kind is None:
            raise ConfigError(
                where, "tool.unik", "main",
                f"parameter {p.name!r} of {main} is not a device: annotate it with a protocol "
                f"from unik.devices or set kind in [tool.unik.devices.{p.name}] (known: {known})",
            )
        devices.append(DeviceSpec(p.name, kind, table))
    return tuple(devices), tuple(settings)


def _setting(where: str, main: str, p: inspect.Parameter, app: str) -> Setting:
    if p.default is p.empty:
        raise ConfigError(
            where, "tool.unik", "main",
            f"keyword-only parameter {p.name!r} of {main} needs a default to become the key "
            f"--{p.name.replace('_', '-')}",
        )
    ptype = p.annotation if p.annotation is not p.empty else type(p.default)
    if ptype not in _SETTING_TYPES:
        raise ConfigError(
            where, "tool.unik", "main",
            f"keyword-only parameter {p.name!r} of {main} must be an int, str, float or bool",
        )
    key = Key(
        name=p.name, help=f"{p.name} of {app}", type=_SETTING_TYPES[ptype],
        default=None if p.default is None else _text(p.default),
    )
    return Setting(p.name, key)
