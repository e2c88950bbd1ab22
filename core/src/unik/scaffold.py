"""``unik new NAME``: a new application directory to start from."""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from pathlib import Path

from .errors import UnikError
from .version import DISTRIBUTION, __version__


def _project(description: str) -> str:
    """The start of a template's ``pyproject.toml``: built by unik's PEP 517 backend."""
    return f'''\
[build-system]
requires = ["setuptools>=68", "{{distribution}}>={{version}}"]
build-backend = "unik.build_meta"

[project]
name = "{{name}}"
version = "0.1.0"
description = "{description}"
requires-python = ">=3.10"
'''


PYPROJECT = _project("A unik application") + '''\

[tool.unik]
main = "{package}:start"

# Configure a device named after a parameter of start(), for example:
# [tool.unik.devices.htdocs]
# kind = "kv_ro"
# source = "htdocs"

# Per-target defaults for keys:
# [tool.unik.targets.unix]
# net = "socket"
'''

INIT = '''\
"""{name}: a unik application."""

from unik.devices import Console, Sleep


async def start(console: Console, sleep: Sleep, *, greeting: str = "hello") -> None:
    """Print the greeting four times, one second apart.

    Each annotated parameter is a device unik connects before calling; the
    keyword-only ``greeting`` becomes the key ``--greeting``.
    """
    for _ in range(4):
        console.log(greeting)
        await sleep.sleep(1.0)
'''

README = '''\
# {name}

A [unik](https://github.com/unik) application.

```
unik configure -t unix        # compose the device graph for the unix target
unik build                    # emit dist/{name}-unix/
unik run --greeting=bonjour   # run it; keys can be overridden at run time
unik describe --dot | dot -Tsvg > graph.svg
```

`src/{package}/__init__.py` holds `start`: its parameters say which devices it needs.
'''


ASGI_PYPROJECT = _project("A FastAPI application on unik") + '''\
# pip installs these (and what they need) into every artifact, C extensions included.
dependencies = ["fastapi", "uvicorn", "httptools"]

[tool.unik]
# An ASGI application, served by uvicorn on unik's TCP/IP stack (keys: --port, --access-log).
asgi = "{package}.app:app"

# Per-target defaults for keys: in a VM, QEMU's user network (no root); publish the port
# with `unik run --publish 127.0.0.1:8000:8000`.
[tool.unik.targets.virtio]
net = "service=user"

# On unix, the host's sockets (`--net tap` puts unik's stack on a TAP instead).
[tool.unik.targets.unix]
net = "socket"
ipv4 = "127.0.0.1/8"
'''

ASGI_INIT = '''\
"""{name}: a FastAPI application served by uvicorn on unik's TCP/IP stack."""
'''

ASGI_APP = '''\
"""The application: FastAPI, unchanged from how it runs anywhere else."""

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel

app = FastAPI(title="{name}")
orders: list[str] = []


class Item(BaseModel):
    """An item to order: pydantic checks the JSON body."""

    name: str
    price: float
    quantity: int = 1


@app.get("/")
async def hello() -> dict[str, str]:
    """A JSON greeting."""
    return {{"hello": "{name}"}}


@app.post("/orders")
async def order(item: Item, background: BackgroundTasks) -> dict[str, object]:
    """Price an order; record it after the response is sent (a background task)."""
    background.add_task(record, item)
    return {{"name": item.name, "total": item.price * item.quantity}}


@app.get("/orders")
async def recorded() -> list[str]:
    """The orders recorded so far."""
    return orders


async def record(item: Item) -> None:
    """Record an order (``async``: a unikernel runs one thread)."""
    orders.append(item.name)
'''

ASGI_README = '''\
# {name}

A FastAPI application on [unik](https://github.com/unik): uvicorn serves it on unik's own
TCP/IP stack, in a VM or as a process.

```
unik configure -t virtio      # a VM on QEMU's user network (see [tool.unik.targets.virtio])
unik build                    # pip installs fastapi, uvicorn... into the image; sizes by distribution
unik run --publish 127.0.0.1:8000:8000 &
curl http://127.0.0.1:8000/
curl -H 'content-type: application/json' -d '{{"name": "tea", "price": 2.5, "quantity": 2}}' http://127.0.0.1:8000/orders
```

`src/{package}/app.py` holds the application; `[project] dependencies` what it needs.
'''

#: ``unik new --template NAME``: the files of each template (path -> text, formatted).
TEMPLATES = {
    "hello": {"pyproject.toml": PYPROJECT, "src/{package}/__init__.py": INIT, "README.md": README},
    "asgi": {"pyproject.toml": ASGI_PYPROJECT, "src/{package}/__init__.py": ASGI_INIT,
             "src/{package}/app.py": ASGI_APP, "README.md": ASGI_README},
}


def package_name(name: str) -> str:
    """The import package of the application ``name``; raise if it cannot be one.

    The package is ``name`` in lower case with ``-`` as ``_``.  It must be an identifier
    that is not a keyword (``import class`` is a syntax error) and must not shadow a
    standard-library module or an installed one: the artifact puts the application
    first on its path, so ``asyncio`` would hide the asyncio everything else imports.
    """
    if not re.fullmatch(r"[A-Za-z]([A-Za-z0-9_-]*[A-Za-z0-9])?", name):
        raise UnikError(f"{name!r} is not a valid name: use letters, digits, - and _, "
                        f"starting with a letter and ending with a letter or digit")
    package = name.replace("-", "_").lower()
    hint = f"choose another name, e.g. `unik new {package}_app`"
    if not package.isidentifier() or keyword.iskeyword(package):
        raise UnikError(f"{name!r} would make the package {package!r}, a Python keyword: {hint}")
    if package in sys.stdlib_module_names or package == "test":
        raise UnikError(f"{name!r} would make the package {package!r}, which would hide the standard "
                        f"library's {package!r} module: {hint}")
    spec = importlib.util.find_spec(package)
    if spec is not None:
        where = f" ({spec.origin})" if spec.origin else ""
        raise UnikError(f"{name!r} would make the package {package!r}, which would hide the installed "
                        f"module {package!r}{where}: {hint}")
    return package


def new_root(name: str, parent: Path) -> tuple[str, Path]:
    """The package and the directory ``parent/name`` of a new project, checked before anything is written."""
    package = package_name(name)
    if not parent.is_dir():
        raise UnikError(f"{parent} is not a directory: create it first, or pass -C DIR naming one")
    root = parent / name
    if root.exists():
        raise UnikError(f"{root} already exists: choose another name or remove it")
    return package, root


def new_application(name: str, parent: Path, template: str = "hello") -> Path:
    """Create ``parent/name`` with a runnable application from ``template``; return its directory."""
    if template not in TEMPLATES:
        from .errors import did_you_mean

        raise UnikError(f"there is no template {template!r}{did_you_mean(template, TEMPLATES)} "
                        f"(templates: {', '.join(TEMPLATES)})")
    package, root = new_root(name, parent)
    (root / "src" / package).mkdir(parents=True)
    values = {"name": name, "package": package, "version": __version__, "distribution": DISTRIBUTION}
    for path, text in TEMPLATES[template].items():
        (root / path.format(**values)).write_text(text.format(**values))
    (root / ".gitignore").write_text("_build/\ndist/\n*.egg-info/\n")
    return root
