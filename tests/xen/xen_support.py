"""Helpers of the xen tests: their applications, xl's parser, what dom0 needs to run `unik`.

Running `unik` and building are :mod:`vm_support`'s, shared with tests/virtio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from vm_support import build_for

REPO = Path(__file__).resolve().parents[2]
XL_PARSE = Path(__file__).with_name("xl_parse.py")

#: An application that prints a line and exits with --status.
STATUS_APP = '''\
"""Say a line, exit with --status."""

from unik.devices import Console


async def start(console: Console, *, status: int = 0) -> int:
    console.log(f"status app exiting with {status}")
    return status
'''

#: An application with a NIC and a disk: the Xen front-ends.
DEVICES_APP = '''\
"""A NIC and a disk: report them."""

from unik.devices import Block, Console, Network


async def start(console: Console, uplink: Network, storage: Block) -> None:
    console.log(f"nic {uplink.mac.hex(':')} disk {storage.sectors}")
'''


def build(root: Path, *configure_args: str, env: dict[str, str] | None = None) -> Path:
    """Configure for xen and build; the artifact directory."""
    return build_for("xen", root, *configure_args, env=env)


def xl_parse(config: Path, libdir: Path) -> dict[str, Any]:
    """What xl's parser (libxlutil, from Debian's xen packages in ``libdir``) reads from ``config``."""
    proc = subprocess.run([sys.executable, str(XL_PARSE), str(config)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LD_LIBRARY_PATH": str(libdir)})
    result: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
    result["stderr"] = proc.stderr
    result["returncode"] = proc.returncode
    return result


#: The plugins `unik` loads in dom0, and when building what it runs there (the plans must agree).
DOM0_PLUGINS = {"UNIK_LOAD_PLUGINS": "xen,vmimage"}
#: The distributions `unik run -t xen` needs in dom0 (UNIK_LOAD_PLUGINS keeps the others out): the
#: xen target and the libraries it depends on, not the virtio target.
DOM0_DISTRIBUTIONS = {"unik_core": "core/src", "unik_target_xen": "plugins/xen/src",
                      "unik_lib_vmimage": "plugins/libs/vmimage/src", "unik_lib_vmguest": "plugins/libs/vmguest/src",
                      "unik_lib_fdio": "plugins/libs/fdio/src"}
STDLIB_LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
                   "__pycache__", "unittest", "pydoc_data"}


def _tree(root: Path, dest: str, skip: set[str] = frozenset()) -> dict[str, Path]:  # type: ignore[assignment]
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(part in skip or part == "__pycache__" for part in rel.parts):
            out[f"{dest}/{rel.as_posix()}"] = path
    return out


def unik_for_dom0() -> tuple[dict[str, Path], list[Path], str]:
    """This CPython, its standard library, unik and the xen target's distributions, at their host paths,
    for a dom0 to run the `unik` command: the files, the binaries whose libraries dom0 needs, and the
    command prefix (environment and interpreter)."""
    import sysconfig

    python = Path(sys.executable).resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = {str(python): python}
    files.update(_tree(stdlib, str(stdlib), STDLIB_LEFT_OUT | {p.name for p in stdlib.glob("config-*")}))
    site = Path(sysconfig.get_paths()["purelib"])
    paths = [str(site)]
    for dist, src in DOM0_DISTRIBUTIONS.items():
        info = next(site.glob(f"{dist}-*.dist-info"))
        files.update(_tree(info, f"{site}/{info.name}"))
        files.update(_tree(REPO / src, str(REPO / src), {"build"}))
        paths.append(str(REPO / src))
    for dep in ("pluggy", "packaging"):
        files.update(_tree(site / dep, f"{site}/{dep}"))
        info = next(site.glob(f"{dep}-*.dist-info"))
        files.update(_tree(info, f"{site}/{info.name}"))
    binaries = [python, *sorted((stdlib / "lib-dynload").glob("*.so"))]
    plugins = DOM0_PLUGINS["UNIK_LOAD_PLUGINS"]
    env = (f"env PYTHONPATH={':'.join(paths)} PYTHONDONTWRITEBYTECODE=1 UNIK_LOAD_PLUGINS={plugins} "
           f"HOME=/tmp {python}")
    return files, binaries, env
