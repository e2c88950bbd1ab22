"""Helpers shared by the xen tests: building applications, running `unik`, xl's parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
UNIK = str(Path(sys.executable).with_name("unik"))
#: A boot under TCG takes seconds; this bounds a whole `unik` command in the tests.
RUN_TIMEOUT_S = 240.0
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


def unik(*args: str, cwd: Path, timeout: float = RUN_TIMEOUT_S, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `unik` command (``env``: extra variables); ``check`` raises with its output when it fails."""
    proc = subprocess.run([UNIK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"unik {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def build(root: Path, *configure_args: str, env: dict[str, str] | None = None) -> Path:
    """Configure for xen and build; the artifact directory."""
    unik("configure", "-t", "xen", *configure_args, cwd=root, env=env)
    unik("build", cwd=root, env=env)
    return next((root / "dist").glob("*-xen"))


def xl_parse(config: Path, libdir: Path) -> dict[str, Any]:
    """What xl's parser (libxlutil, from Debian's xen packages in ``libdir``) reads from ``config``."""
    proc = subprocess.run([sys.executable, str(XL_PARSE), str(config)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LD_LIBRARY_PATH": str(libdir)})
    result: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
    result["stderr"] = proc.stderr
    result["returncode"] = proc.returncode
    return result


#: The plugins `unik` loads in dom0, and when building what it runs there (the plans must agree).
DOM0_PLUGINS = {"UNIK_LOAD_PLUGINS": "xen,virtio,vmimage"}
#: The distributions `unik run -t xen` needs in dom0 (UNIK_LOAD_PLUGINS keeps the others out).
DOM0_DISTRIBUTIONS = {"unik_core": "core/src", "unik_target_xen": "plugins/xen/src",
                      "unik_target_virtio": "plugins/virtio/src", "unik_lib_vmimage": "plugins/libs/vmimage/src"}
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
    env = (f"env PYTHONPATH={':'.join(paths)} PYTHONDONTWRITEBYTECODE=1 UNIK_LOAD_PLUGINS=xen,virtio,vmimage "
           f"HOME=/tmp {python}")
    return files, binaries, env
