"""Which modules an application reaches: a static import finder for trimming the stdlib.

Like :mod:`modulefinder` it reads source files and follows ``import`` statements,
including those inside functions, without running anything.  Three rules keep the
result close to what actually runs:

* imports under ``if TYPE_CHECKING:`` and ``if sys.platform == "win32":`` are not
  followed (they never run in a VM);
* imports in the body of a ``try`` whose handlers catch ``ImportError`` (or
  ``ModuleNotFoundError``) are *optional*: they are followed, except the modules of
  :data:`HEAVY_OPTIONAL`, which bind large external libraries (OpenSSL, readline,
  ncurses, sqlite, Tcl/Tk, liblzma, libbz2) and without which the standard library
  works (``asyncio`` without ``ssl``, ``hashlib`` on its built-in hashes);
* development tools (:data:`TOOLS`: ``pydoc``, ``unittest``, ``pdb``...) are never
  followed;
* in the modules under ``lazy_roots`` (the standard library), imports inside function
  bodies and under ``if __name__ == "__main__":`` are *lazy*; the lazy imports of the
  big subsystems in :data:`LAZY_SKIPPED` are not followed.  The standard library defers
  them that way because they are rarely used: ``concurrent.futures`` imports
  ``multiprocessing`` only when a process pool is asked for, ``importlib`` reaches
  ``importlib.metadata`` (and with it ``email``, ``csv``, ``zipfile``) only from
  ``find_distributions``, ``shutil`` imports ``tarfile``/``zipfile`` only to make
  archives, ``warnings`` imports ``tracemalloc`` only for ``ResourceWarning`` sources,
  ``traceback`` imports ``unicodedata`` only for non-ASCII source lines.  Every other
  lazy import is followed (``argparse`` needs ``shutil`` for the terminal's width), and
  a module imported at module level anywhere is included with what it imports.

Modules named explicitly (``ImageContents.python_modules``) are always included, with
what they import.  ``importlib.import_module("literal")`` calls are followed, and so are
codecs named by a literal (``.encode("utf-16-le")``, ``.decode(...)``,
``codecs.lookup(...)``): the codec registry imports ``encodings.utf_16_le`` at run time.
"""

from __future__ import annotations

import ast
import encodings
import encodings.aliases
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.machinery import EXTENSION_SUFFIXES, PathFinder
from pathlib import Path

#: Never followed unless asked for by name: interactive and development tools.
TOOLS = frozenset({
    "pydoc", "pydoc_data", "doctest", "unittest", "pdb", "bdb", "cmd", "code", "codeop", "readline",
    "rlcompleter", "tkinter", "turtle", "turtledemo", "idlelib", "lib2to3", "distutils", "ensurepip",
    "venv", "test", "curses", "profile", "cProfile", "pstats", "timeit", "trace", "tabnanny",
    "webbrowser", "xmlrpc", "pyclbr", "msilib", "_msi", "winreg", "msvcrt", "_winapi", "nt", "_overlapped",
})
#: Optional imports that are left out: they need big shared libraries and have fallbacks.
HEAVY_OPTIONAL = frozenset({
    "ssl", "_ssl", "_hashlib", "readline", "_curses", "_curses_panel", "_sqlite3", "sqlite3", "_dbm", "_gdbm",
    "_tkinter", "_lzma", "lzma", "_bz2", "bz2", "_uuid",
})
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})
#: Subsystems (with their submodules) that lazy standard-library imports do not pull in.
LAZY_SKIPPED = frozenset({
    "multiprocessing", "concurrent.futures.process", "importlib.metadata", "importlib.resources",
    "importlib.readers", "email", "tarfile", "zipfile", "gzip", "unicodedata", "pickle", "_pickle", "tracemalloc",
    "ctypes", "_ctypes", "decimal", "_decimal", "_pydecimal", "fractions", "statistics", "csv", "_csv",
    # host names to IDNA (asyncio's and socket's getaddrinfo helpers; unik's stack resolves nothing
    # through them): with stringprep it pulls in unicodedata
    "encodings.idna", "encodings.punycode", "stringprep",
})


def _lazily_skipped(module: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:i]) in LAZY_SKIPPED for i in range(1, len(parts) + 1))


@dataclass
class Found:
    """The finder's answer: module name -> file, and what could not be found (and who asked)."""

    modules: dict[str, Path] = field(default_factory=dict)
    #: Who first imported each module (``__main__`` for the script).
    importers: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    optional: set[str] = field(default_factory=set)
    #: Lazy imports of ``lazy_roots`` modules that were not followed (module -> importer).
    lazy: dict[str, str] = field(default_factory=dict)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_windows(test: ast.expr) -> bool:
    """``sys.platform == "win32"`` or ``os.name == "nt"``: never true in a unik VM."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    left, right = test.left, test.comparators[0]
    return (isinstance(left, ast.Attribute) and isinstance(right, ast.Constant)
            and (left.attr, right.value) in (("platform", "win32"), ("name", "nt")))


def _is_main(test: ast.expr) -> bool:
    """``__name__ == "__main__"``: a module's command-line entry, not run on import."""
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _catches_import_error(handlers: Sequence[ast.ExceptHandler]) -> bool:
    for h in handlers:
        kinds = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type] if h.type else []
        for k in kinds:
            if isinstance(k, ast.Name) and k.id in _IMPORT_ERRORS:
                return True
    return False


class _Imports(ast.NodeVisitor):
    """Collects ``(module, names, optional)`` from one module's syntax tree."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.found: list[tuple[str, tuple[str, ...], bool]] = []
        #: The lazy imports' indices in ``found`` (inside a function or ``__main__`` block).
        self.lazy: set[int] = set()
        self._optional = 0
        self._lazy = 0

    def _add(self, module: str, names: tuple[str, ...]) -> None:
        if self._lazy:
            self.lazy.add(len(self.found))
        self.found.append((module, names, self._optional > 0))

    def _visit_lazily(self, node: ast.AST) -> None:
        self._lazy += 1
        self.generic_visit(node)
        self._lazy -= 1

    visit_FunctionDef = _visit_lazily
    visit_AsyncFunctionDef = _visit_lazily
    visit_Lambda = _visit_lazily

    def _absolute(self, module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        parts = self.package.split(".") if self.package else []
        base = parts[: len(parts) - (level - 1)] if level > 1 else parts
        return ".".join([*base, *([module] if module else [])])

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test) or _is_windows(node.test):
            for stmt in node.orelse:
                self.visit(stmt)
            return
        if _is_main(node.test):
            self._visit_lazily(node)
            return
        self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        optional = _catches_import_error(node.handlers)
        self._optional += optional
        for stmt in node.body:
            self.visit(stmt)
        self._optional -= optional
        for handler in node.handlers:
            self.visit(handler)
        for stmt in [*node.orelse, *node.finalbody]:
            self.visit(stmt)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, ())

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = self._absolute(node.module, node.level)
        names = tuple(a.name for a in node.names if a.name != "*")
        if module:
            self._add(module, names)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
                self._add(arg.value, ())
        elif name in ("encode", "decode", "lookup") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                codec = _codec_module(arg.value)
                if codec:
                    self._add(codec, ())
        self.generic_visit(node)


def _codec_module(encoding: str) -> str | None:
    """The ``encodings`` module the codec registry imports for ``encoding`` (``None``: none here)."""
    norm = encodings.normalize_encoding(encoding).lower()
    module = encodings.aliases.aliases.get(norm, norm)
    return f"encodings.{module}" if (Path(encodings.__file__).parent / f"{module}.py").is_file() else None


class ImportFinder:
    """Finds modules on ``path`` (directories searched like ``sys.path``)."""

    def __init__(self, path: Sequence[Path], lazy_roots: Sequence[Path] = ()) -> None:
        self.path = [str(p) for p in path]
        self.lazy_roots = [p.resolve() for p in lazy_roots]
        self.result = Found()
        self._locations: dict[str, list[str] | None] = {}
        self._done: set[str] = set()

    def _locate(self, name: str) -> tuple[Path | None, list[str] | None] | None:
        """(file, package locations) of ``name``; ``None`` when it cannot be found."""
        if name in sys.builtin_module_names:
            return None, None
        parent, _, _ = name.rpartition(".")
        if parent:
            if parent not in self._locations:
                self.add(parent, why=name)
            locations = self._locations.get(parent)
            if locations is None:
                return None
            try:
                spec = PathFinder.find_spec(name, locations)
            except KeyError:
                # A namespace package inside a namespace package (opentelemetry.context):
                # importlib looks its parent up in sys.modules, where nothing is imported here.
                leaf = name.rpartition(".")[2]
                dirs = [str(Path(loc) / leaf) for loc in locations if (Path(loc) / leaf).is_dir()]
                return (None, dirs) if dirs else None
        else:
            spec = PathFinder.find_spec(name, self.path)
        if spec is None:
            return None
        origin = Path(spec.origin) if spec.origin and spec.has_location else None
        return origin, list(spec.submodule_search_locations or []) or None

    def add(self, name: str, why: str = "", optional_ok: bool = True) -> bool:
        """Include ``name`` and what it imports; whether it was found."""
        parent = name.rpartition(".")[0]
        if parent and parent not in self._done:
            # The parent first, as importing does: its own imports may reach ``name``'s siblings,
            # which must then find it located (anyio/__init__ imports anyio.abc._tasks).
            self.add(parent, why=name)
        if name in self._done:
            return name in self._locations
        self._done.add(name)
        located = self._locate(name)
        if located is None:
            self.result.missing[name] = why
            return False
        origin, locations = located
        self._locations[name] = locations
        if origin is None:
            return True
        self.result.modules[name] = origin
        self.result.importers[name] = why
        if origin.suffix == ".py":
            package = name if origin.name == "__init__.py" else name.rpartition(".")[0]
            self._scan(origin, package, name)
        return True

    def _scan(self, source: Path, package: str, name: str) -> None:
        try:
            tree = ast.parse(source.read_bytes(), str(source))
        except SyntaxError:
            return
        visitor = _Imports(package)
        visitor.visit(tree)
        resolved = source.resolve()
        lazy_here = any(resolved.is_relative_to(r) for r in self.lazy_roots) and "site-packages" not in resolved.parts
        for i, (module, names, optional) in enumerate(visitor.found):
            if module.split(".")[0] in TOOLS:
                continue
            if lazy_here and i in visitor.lazy and _lazily_skipped(module):
                if module not in self._done:
                    self.result.lazy.setdefault(module, name)
                continue
            if optional and module.split(".")[0] in HEAVY_OPTIONAL:
                if module not in self._done:
                    self.result.optional.add(module)
                continue
            if self.add(module, why=name):
                for sub in names:  # `from package import submodule`
                    if self._locations.get(module) and f"{module}.{sub}" not in self._done:
                        self._try_submodule(f"{module}.{sub}", name)

    def _try_submodule(self, name: str, why: str) -> None:
        parent, _, leaf = name.rpartition(".")
        for loc in self._locations.get(parent) or ():
            base = Path(loc) / leaf
            if (base / "__init__.py").is_file() or base.with_suffix(".py").is_file() or any(
                (Path(loc) / f"{leaf}{s}").is_file() for s in EXTENSION_SUFFIXES
            ):
                self.add(name, why=why)
                return

    def run_script(self, script: Path) -> None:
        """Follow the imports of ``script`` (run as ``__main__``)."""
        self._scan(script, "", "__main__")


def find_modules(script: Path, path: Sequence[Path], names: Iterable[str] = (),
                 lazy_roots: Sequence[Path] = ()) -> Found:
    """Modules reached from ``script`` and from ``names`` (which are included even if tools).

    Function-level imports of modules under ``lazy_roots`` are not followed.
    """
    finder = ImportFinder(path, lazy_roots)
    finder.run_script(script)
    for name in names:
        finder.add(name, why="asked for")
    finder.result.optional -= set(finder.result.modules)
    finder.result.lazy = {m: w for m, w in finder.result.lazy.items() if m not in finder.result.modules}
    return finder.result
