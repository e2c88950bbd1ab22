"""``unik new --plugin NAME``: a plugin distribution to start from.

What a third party needs to publish a provider, as our own plugins have it: the entry
point in the group ``unik``, ``UNIK_API`` and ``UNIK_RUNTIME``, a provider (a block
device in memory) whose hot path is in C with a pure-Python twin chosen by
:mod:`unik.accel`, tests that run :mod:`unik.conformance`'s ``Block`` suite on it and
compare the twins, and a wheel built with its C extension (``python -m build``).
"""

from __future__ import annotations

from pathlib import Path

from .scaffold import new_root
from .version import API_VERSION, DISTRIBUTION, __version__

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
description = "A unik plugin: a block device in memory"
requires-python = ">=3.10"
dependencies = ["{distribution}>={version}"]

[project.optional-dependencies]
test = ["pytest>=8"]

# unik finds the plugin through this entry point (`unik plugins` lists it).
[project.entry-points.unik]
{package} = "{package}.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
{package} = ["*.c"]
'''

SETUP = '''\
"""The C accelerator of {package}; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("{package}._fill", ["src/{package}/_fill.c"], extra_compile_args=["-O2"])])
'''

PLUGIN = '''\
"""The plugin module: what unik loads through the entry point ``{package}``."""

from __future__ import annotations

from collections.abc import Sequence

from unik.hookspecs import hookimpl
from unik.provider import Configured, Option, Provider, Request

#: The range of unik's plugin API this plugin is written against.
UNIK_API = ">={api},<{next_api}"
#: The modules that run inside an artifact (unik bundles them; the rest is build-time code).
UNIK_RUNTIME = ("{package}.ramdisk",)


class RamDiskProvider(Provider):
    """A ``block`` device in memory, for a device table that gives ``sectors``."""

    PLUGIN_NAME = "{package}.ramdisk"
    kind = "block"
    implementation = "{package}.ramdisk:RamDisk"
    description = "a disk in memory (lost when the application stops)"
    priority = 10  # above the targets' disks, when the table asks for a RAM disk
    options = (
        Option("sectors", "size in 512-byte sectors", "int", required=True),
        Option("read_only", "refuse writes", "bool", default=False),
    )

    @classmethod
    def applies(cls, request: Request) -> bool:
        """When the device table gives ``sectors``."""
        return "sectors" in request.table

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Check the table's options; the device's name goes to ``connect`` too."""
        options = cls.table_options(request)
        if options["sectors"] <= 0:
            raise request.error("sectors", "must be a positive number of sectors")
        return Configured(options={{"name": request.device, **options}})


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The providers of this plugin."""
    return [RamDiskProvider]
'''

RAMDISK = '''\
"""A :class:`unik.devices.Block` in memory (runs inside the artifact)."""

from __future__ import annotations

from types import ModuleType

from unik import accel
from unik.devices import Buffer
from unik.errors import DeviceClosed, DeviceError, OutOfRange, ReadOnlyDevice

SECTOR = 512

fill: ModuleType


def _use(module: ModuleType) -> None:
    global fill
    fill = module


#: The C accelerator, or its pure twin (UNIK_PURE=1, or C not built).
TWIN = accel.twin("{package}._fill", "{package}._fill_py", _use)


class RamDisk:
    """Sectors in a bytearray; ``discard`` zeroes them (in C)."""

    def __init__(self, name: str, sectors: int, read_only: bool = False) -> None:
        self.name = name
        self.sector_size = SECTOR
        self.sectors = sectors
        self.read_only = read_only
        self._data: bytearray | None = bytearray(sectors * SECTOR)

    @classmethod
    async def connect(cls, name: str = "ram", sectors: int = 2048, read_only: bool = False) -> RamDisk:
        """A new, zeroed disk of ``sectors`` sectors."""
        return cls(name, sectors, read_only)

    def _check(self, sector: int, count: int) -> bytearray:
        if self._data is None:
            raise DeviceClosed(f"disk {{self.name}} is disconnected")
        if sector < 0 or count < 0 or sector + count > self.sectors:
            raise OutOfRange(f"sectors {{sector}}..{{sector + count}} outside disk {{self.name}} ({{self.sectors}})")
        return self._data

    async def read(self, sector: int, count: int) -> bytes:
        """``count`` sectors from ``sector``."""
        data = self._check(sector, count)
        return bytes(data[sector * SECTOR:(sector + count) * SECTOR])

    async def write(self, sector: int, data: Buffer) -> None:
        """Whole sectors at ``sector``."""
        n = memoryview(data).nbytes
        if n % SECTOR:
            raise DeviceError(f"disk {{self.name}}: {{n}} bytes is not a whole number of sectors")
        store = self._check(sector, n // SECTOR)
        if self.read_only:
            raise ReadOnlyDevice(f"disk {{self.name}} is read-only")
        store[sector * SECTOR:sector * SECTOR + n] = data

    async def flush(self) -> None:
        """Nothing to make durable: memory is all there is."""
        self._check(0, 0)

    async def discard(self, sector: int, count: int) -> None:
        """Zero the sectors."""
        store = self._check(sector, count)
        if self.read_only:
            raise ReadOnlyDevice(f"disk {{self.name}} is read-only")
        fill.fill(store, sector * SECTOR, count * SECTOR, 0)

    async def disconnect(self) -> None:
        """Free the memory; later use raises DeviceClosed."""
        self._data = None
'''

FILL_C = '''\
/* {package}._fill: fill(buffer, offset, length, byte) sets bytes of a writable buffer. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *fill(PyObject *self, PyObject *args) {{
    Py_buffer buf;
    Py_ssize_t offset, length;
    int byte;
    if (!PyArg_ParseTuple(args, "w*nni", &buf, &offset, &length, &byte))
        return NULL;
    if (offset < 0 || length < 0 || offset > buf.len - length || byte < 0 || byte > 255) {{
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "fill: range outside the buffer, or byte outside 0..255");
        return NULL;
    }}
    memset((char *)buf.buf + offset, byte, (size_t)length);
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}}

static PyMethodDef methods[] = {{
    {{"fill", fill, METH_VARARGS, "fill(buffer, offset, length, byte): set length bytes from offset."}},
    {{NULL, NULL, 0, NULL}},
}};

static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "_fill", NULL, -1, methods}};

PyMODINIT_FUNC PyInit__fill(void) {{ return PyModule_Create(&module); }}
'''

FILL_PY = '''\
"""Pure-Python twin of ``{package}._fill`` (UNIK_PURE=1, or when C is not built)."""

from __future__ import annotations


def fill(buffer: bytearray, offset: int, length: int, byte: int) -> None:
    """Set ``length`` bytes of ``buffer`` from ``offset`` to ``byte``."""
    if offset < 0 or length < 0 or offset > len(buffer) - length or not 0 <= byte <= 255:
        raise ValueError("fill: range outside the buffer, or byte outside 0..255")
    buffer[offset:offset + length] = bytes([byte]) * length
'''

TESTS = '''\
"""{package} passes unik's Block conformance suite, with the C accelerator and its twin alike."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from unik import accel
from unik.testing import BlockConformance

from {package} import ramdisk
from {package}.ramdisk import RamDisk


class TestRamDisk(BlockConformance):
    """Every check of the Block protocol, on a 64-sector disk."""

    async def connect(self) -> Any:
        """A writable disk."""
        return await RamDisk.connect(sectors=64)

    async def connect_read_only(self) -> Any:
        """A read-only disk."""
        return await RamDisk.connect(sectors=64, read_only=True)


class TestRamDiskPure(TestRamDisk):
    """The same checks with the pure-Python twin of the C accelerator."""

    @pytest.fixture(autouse=True)
    def _pure(self) -> Iterator[None]:
        with accel.pure_twins():
            yield


@pytest.mark.parametrize("twin", ["{package}._fill", "{package}._fill_py"])
def test_the_twins_agree(twin: str) -> None:
    """C and Python fill the same bytes and refuse the same ranges."""
    module = importlib.import_module(twin)
    buf = bytearray(b"x" * 100)
    module.fill(buf, 10, 20, 0)
    assert buf == b"x" * 10 + bytes(20) + b"x" * 70
    with pytest.raises(ValueError):
        module.fill(buf, 90, 20, 0)


def test_the_c_accelerator_is_used_when_built() -> None:
    """An installed wheel has the C part; UNIK_PURE=1 selects the twin."""
    assert ramdisk.TWIN.implementation() == ("pure" if accel.pure() else "c")
'''

README = '''\
# {name}

A unik plugin: `{package}.ramdisk`, a `block` device in memory.

```
pip install .                   # builds the C accelerator (_fill.c) into the wheel
python -m build --wheel         # or the wheel alone, into dist/
pip install '.[test]' && pytest # unik's Block conformance suite on RamDisk, both twins
unik plugins                    # lists {package}, its provider and its run-time modules
```

An application asks for it with a device table that gives `sectors`:

```toml
[tool.unik.devices.scratch]      # async def start(scratch: Block, ...)
kind = "block"
sectors = 2048
```
'''


def new_plugin(name: str, parent: Path) -> Path:
    """Create ``parent/name``: a plugin distribution with a provider, its C part and its tests."""
    package, root = new_root(name, parent)
    major = int(API_VERSION.split(".")[0])
    values = {"name": name, "package": package, "version": __version__, "distribution": DISTRIBUTION,
              "api": API_VERSION, "next_api": major + 1}
    src = root / "src" / package
    src.mkdir(parents=True)
    (root / "tests").mkdir()
    files = {
        root / "pyproject.toml": PYPROJECT, root / "setup.py": SETUP, root / "README.md": README,
        src / "__init__.py": '"""{name}: a unik plugin."""\n', src / "plugin.py": PLUGIN,
        src / "ramdisk.py": RAMDISK, src / "_fill.c": FILL_C, src / "_fill_py.py": FILL_PY,
        root / "tests" / "test_ramdisk.py": TESTS,
    }
    for path, template in files.items():
        path.write_text(template.format(**values))
    (root / ".gitignore").write_text("build/\ndist/\n*.egg-info/\n*.so\n")
    return root
