"""Building guests for unik-hvt in the tests: freestanding (no libc, no SSE) so that they
run on any KVM, this machine's included (which emulates the guest, see plugins/solo5/README)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import require
from tap_support import tap_namespace
from unik_solo5 import hvt_snapshot
from unik_solo5.hvtfs import FsFile, link, pack

MONITOR = Path(str(__import__("unik_solo5").__file__)).with_name("unik-hvt")
GUEST_DIR = Path(__file__).with_name("guest")
GUEST_CFLAGS = ["-O2", "-ffreestanding", "-mgeneral-regs-only", "-fno-stack-protector", "-fno-pie"]


def kvm_missing() -> str | None:
    """Why no VM can be created here (``None``: /dev/kvm opens read-write)."""
    why = hvt_snapshot.kvm_missing()
    return f"hvt needs {why} (read-write)" if why else None


def needs_kvm() -> None:
    """Skip the calling test when /dev/kvm cannot be opened."""
    why = kvm_missing()
    if why:
        pytest.skip(why)


def asm_guest(tmp: Path, name: str, body: str, data: str = "") -> Path:
    """A static ELF from an assembly ``body`` at ``_start`` (no runtime: the bare monitor ABI)."""
    src = tmp / f"{name}.S"
    src.write_text(f".globl _start\n.text\n_start:\n{body}\n.data\n{data}\n"
                   '.section .note.GNU-stack, "", @progbits\n')
    out = tmp / name
    subprocess.run(["gcc", "-nostdlib", "-static", "-no-pie", "-o", str(out), str(src)], check=True)
    return out


def runtime_guest(tmp: Path, source: Path, files: dict[str, FsFile] | None = None) -> Path:
    """``source`` (freestanding C with its own ``_start``) linked with hvt's guest runtime and an archive."""
    obj = tmp / (source.stem + ".o")
    subprocess.run(["gcc", *GUEST_CFLAGS, "-c", str(source), "-o", str(obj)], check=True)
    out = tmp / source.stem
    link([obj], pack(files) if files is not None else None, out, libc=False)
    return out


def run(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run unik-hvt with ``args``; a silent guest cannot hang the test (``timeout``)."""
    return subprocess.run([str(MONITOR), *map(str, args)], capture_output=True, text=True, timeout=timeout)


UNIK = str(Path(__import__("sys").executable).parent / "unik")
ROOT = Path(__file__).resolve().parents[2]


def unik(app: Path, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the unik command in ``app``."""
    proc = subprocess.run([UNIK, *args], cwd=app, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"unik {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def needs_build_tools() -> None:
    """Skip when gcc, the static glibc or Debian's static CPython are missing (naming what)."""
    from unik_solo5.hvt_target import build_missing

    why = build_missing()
    if why:
        pytest.skip(why)


def build_app(root: Path, name: str, body: str, head: str = "") -> Path:
    """An application ``root/name`` whose ``start(console)`` runs ``body`` (``head``: module-level code),
    configured and built for hvt."""
    app = root / name
    pkg = app / "src" / name
    pkg.mkdir(parents=True)
    (app / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.1.0"\n\n'
                                        f'[tool.unik]\nmain = "{name}:start"\n')
    (pkg / "__init__.py").write_text("import os\nfrom unik.devices import Console\n" + textwrap.dedent(head)
                                     + "\n\nasync def start(console: Console) -> object:\n"
                                     + textwrap.indent(textwrap.dedent(body), "    "))
    unik(app, "-q", "configure", "-t", "hvt")
    unik(app, "-q", "build")
    return app


def needs_tap_guests(*tools: str) -> None:
    """Skip unless a unikernel can be served over a TAP in a test namespace: KVM, the build tools, ``ip``,
    ``curl`` and ``tools``, root and /dev/net/tun."""
    needs_kvm()
    needs_build_tools()
    require("ip", "curl", *tools)
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        pytest.skip("a TAP in a network namespace needs root and /dev/net/tun")


@contextlib.contextmanager
def tap_guest_namespace(prefix: str, host: str, *tools: str) -> Iterator[str]:
    """A network namespace ``<prefix><pid>`` holding a TAP ``hvt0`` (virtio-net header) at ``host``/24, after
    :func:`needs_tap_guests`; deleted after."""
    needs_tap_guests(*tools)
    with tap_namespace(f"{prefix}{os.getpid()}", "hvt0", host) as name:
        yield name
