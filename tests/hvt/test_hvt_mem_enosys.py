"""The snapshot is made with the configured --mem: a run with it or more restores (the heap
growing into the rest), one with less boots cold saying why.  Ordinary imports make no
unsupported system call (no ENOSYS line); an unsupported one is still refused and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hvt_support import needs_build_tools, needs_kvm, unik

#: The imports another engineer saw print a socket ENOSYS line: glibc asked nscd (getpwuid for
#: expanduser("~"), from sysconfig's user base, which zoneinfo reads).
APP = '''\
import asyncio, json, os, pwd, queue, socket, zoneinfo
from unik.devices import Console

HOME = os.path.expanduser("~")


async def start(console: Console, *, unsupported: str = "no", alloc_mib: int = 0) -> None:
    blocks = [bytearray(200 << 20) for _ in range(alloc_mib // 200)]  # large blocks: mmap, not the break
    for b in blocks:
        b[::4096] = b"x" * (len(b) // 4096)  # every page touched
    if blocks:
        console.log(f"allocated {sum(len(b) for b in blocks) >> 20} MiB, {sum(b.count(b'x') for b in blocks)} pages")
    if unsupported == "yes":
        try:
            os.getpriority(os.PRIO_PROCESS, 0)
        except OSError as exc:
            console.log(f"getpriority errno {exc.errno}")
    console.log(f"probe ok home={HOME}")
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    needs_kvm()
    needs_build_tools()
    app = tmp_path_factory.mktemp("memprobe") / "memprobe"
    (app / "src" / "memprobe").mkdir(parents=True)
    (app / "pyproject.toml").write_text('[project]\nname = "memprobe"\nversion = "0.1.0"\n\n'
                                        '[tool.unik]\nmain = "memprobe:start"\n')
    (app / "src" / "memprobe" / "__init__.py").write_text(APP)
    unik(app, "-q", "configure", "-t", "hvt", "--mem", "512M")
    unik(app, "-q", "build")
    return app


def test_the_snapshot_has_the_configured_mem(probe: Path) -> None:
    record = json.loads((probe / "dist" / "memprobe-hvt" / "memprobe.snap.json").read_text())
    assert record["mem_mib"] == 512
    cmd = unik(probe, "run", "--dry-run").stdout.strip().splitlines()[-1]
    monitor, _, guest = cmd.partition(" -- ")
    assert "--mem 512 --snapshot" in monitor
    assert "--mem" not in guest  # the monitor's key, not the application's


def test_a_run_with_the_configured_mem_restores(probe: Path) -> None:
    proc = unik(probe, "run", "--profile")
    assert "probe ok home=~" in proc.stdout + proc.stderr
    assert "booting cold" not in proc.stderr
    assert "since the runtime resumed from its snapshot" in proc.stderr
    assert "ENOSYS" not in proc.stderr


def test_more_mem_restores_and_the_heap_takes_it(probe: Path) -> None:
    # 600 MiB do not fit in the snapshot's 512 MiB: the heap has the memory above the stack too
    proc = unik(probe, "run", "--mem", "1G", "--alloc-mib", "600", "--profile")
    out = proc.stdout + proc.stderr
    assert f"allocated 600 MiB, {600 << 8} pages" in out and "probe ok" in out
    assert "since the runtime resumed from its snapshot" in proc.stderr and "booting cold" not in proc.stderr


def test_less_mem_boots_cold_saying_why(probe: Path) -> None:
    proc = unik(probe, "run", "--mem", "256M")
    assert "probe ok" in proc.stdout + proc.stderr
    assert "was made with --mem 512, this run has --mem 256" in proc.stderr
    assert "unik configure --mem 256M" in proc.stderr
    assert "booting cold" in proc.stderr


def test_ordinary_imports_make_no_unsupported_call(probe: Path) -> None:
    proc = unik(probe, "run", "--no-snapshot")  # cold: the imports run now, not at build time
    assert "probe ok home=~" in proc.stdout + proc.stderr
    assert "ENOSYS" not in proc.stderr, proc.stderr
    assert "not supported" not in proc.stderr, proc.stderr


def test_an_unsupported_call_is_still_refused_and_named(probe: Path) -> None:
    proc = unik(probe, "run", "--unsupported", "yes")
    out = proc.stdout + proc.stderr
    assert "getpriority errno 38" in out  # ENOSYS
    assert proc.stderr.count("system call getpriority (140) is not supported by the hvt runtime: ENOSYS") == 1
    assert "probe ok" in out
