"""Helpers shared by the virtio tests: building applications and booting them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIK = str(Path(sys.executable).with_name("unik"))
#: A boot under TCG takes a few seconds; this bounds a whole `unik run` in the tests.
RUN_TIMEOUT_S = 240.0

#: An application that reports its entropy source and exits with a chosen status, or crashes.
STATUS_APP = '''\
"""Exit with --status after reading from the entropy device; --crash raises instead."""

from unik.devices import Console, EntropySource


async def start(console: Console, entropy: EntropySource, *, status: int = 0, crash: bool = False) -> int:
    data = await entropy.read(16)
    console.log(f"entropy {entropy.name} {len(data)}")
    if crash:
        raise RuntimeError("deliberate failure")
    return status
'''


#: An application that writes two sectors, or (after a reboot) reads them back.
DISK_APP = '''\
"""Write sectors 5-6 with --phase write; check them with --phase read."""

from unik.devices import Block, Console

PATTERN = bytes(range(256)) * 4


async def start(console: Console, storage: Block, *, phase: str = "write") -> int:
    console.log(f"disk {storage.sectors} sectors of {storage.sector_size} bytes")
    if phase == "write":
        await storage.write(5, PATTERN)
        await storage.flush()
        console.log("wrote")
        return 0
    same = await storage.read(5, 2) == PATTERN
    console.log("match" if same else "mismatch")
    return 0 if same else 3
'''


def missing_tools() -> str | None:
    """Why the boot tests cannot run here (``None``: they can)."""
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"), ("apt-get", "apt"), ("dpkg-deb", "dpkg")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    return None


def copy_example(name: str, dest: Path) -> Path:
    """A private copy of ``examples/<name>`` without build outputs."""
    target = dest / name
    shutil.copytree(REPO / "examples" / name, target,
                    ignore=shutil.ignore_patterns("_build", "dist", "*.egg-info", "__pycache__"))
    return target


def write_app(dest: Path, name: str, source: str) -> Path:
    """An application ``name`` under ``dest/name`` whose package ``<name>_app`` holds ``source``."""
    root = dest / name
    (root / "src" / f"{name}_app").mkdir(parents=True)
    (root / "src" / f"{name}_app" / "__init__.py").write_text(source)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "{name}"
        version = "0.1.0"

        [tool.unik]
        main = "{name}_app:start"
    """))
    return root


def unik(*args: str, cwd: Path, timeout: float = RUN_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `unik` command; ``check`` raises with its output when it fails."""
    proc = subprocess.run([UNIK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))
    if check and proc.returncode != 0:
        raise AssertionError(f"unik {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def build(root: Path, *configure_args: str) -> Path:
    """Configure for virtio and build; the artifact directory."""
    unik("configure", "-t", "virtio", *configure_args, cwd=root)
    unik("build", cwd=root)
    return next((root / "dist").glob("*-virtio"))
