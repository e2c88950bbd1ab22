"""Boot benchmark of the virtio target: image sizes and boot times, side by side with peers.

* unik: ``examples/http`` and ``examples/hello`` built with ``unik build -t virtio``; sizes of
  the kernel and the http initramfs; from starting ``unik run`` to the first console line
  (the init's), to hello's first line, and for http (on a TAP in a network namespace made
  here and removed after) to QEMU's start, the init's line, the application's "serving"
  line, the first ICMP echo reply and the first HTTP response: the guest's phases (kernel,
  Python, first exchange) are the differences.
* peers.naive_image: the same kernel and init with an initramfs built the naive way: the
  whole standard library as installed (sources and caches, without the test suite, which
  Debian ships apart), every shared library, unstripped, gzip -9; time to its first console
  line and to hello's first line.  It needs 1 GiB of memory (unik's images boot in 256 MiB).
* peers.bare_kernel_c_init: the same kernel with a static C init that prints one line and
  exits: the floor for boot-to-init on this accelerator.
* peers.unik_source_kernel and peers.bare_source_kernel_c_init: the same two on kernels
  built from source for the plans (``--kernel source``, Lupine-style), when those kernels
  are in the cache or UNIK_BENCH_SOURCE_KERNEL=1 asks to build them (minutes each; =0
  leaves them out).

The first ICMP reply and HTTP response are seen by a prober in the namespace that starts a
TCP connection every 25 ms (without waiting for the earlier ones) and a ping every 100 ms,
so the figures are not rounded up to the one-second timeouts of ping and curl.

Figures are medians of RUNS boots, on the accelerator `unik run` picks (KVM if a probe
boots, else TCG).  Needs root (namespace, TAP) and qemu-system-x86.

``--baseline REV`` measures instead examples/hello's boot under TCG, today's unik against
unik at git revision REV (installed into a virtual environment of its own under
``build/bench-baseline/``), alternately in one run: from ``unik run`` to the first console
line and to hello's first line, each tree building its own examples/hello with the same
cached Debian kernel.  Medians go under ``baseline`` in ``results/boot.json`` (the other
keys kept) with the load average before and after.

The snapshot figures (issue 20: restore to first response against cold boot and the bare
kernel, the snapshot's size, QEMU's memory, what saving adds to a build) are
``bench/boot_snapshot.py``'s: added by the full run as root (UNIK_BENCH_SNAPSHOT=0 leaves them
out), or alone with ``--snapshot``.

``--hvt`` measures the hvt target against virtio under TCG in one run (examples/http from
``unik run`` to the first HTTP response under each, the floor, image size, memory floor and
where hello's boot goes), under ``hvt`` in ``results/boot.json`` (the other keys kept).

    python bench/boot.py [--xen | --hvt | --snapshot | --baseline REV [--rounds N]]
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from benchlib import (
    alternate,
    baseline_unik,
    load_average,
    median_of,
    report_baseline,
    table,
    write,
)
from unik.progress import Progress
from unik_vmimage import cpio, qemu
from unik_vmimage.initramfs import Interpreter, read_initramfs
from unik_vmimage.kernels import DebianKernel

REPO = Path(__file__).resolve().parents[1]
UNIK = str(Path(sys.executable).with_name("unik"))
RUNS = 5
#: The naive image unpacks to about 200 MB: with unik's 256M its Python is killed.
NAIVE_MEM = "1G"
LIMIT_S = 120.0

BARE_INIT = r"""
#include <sys/io.h>
#include <unistd.h>
#include <termios.h>
int main(void) {
    static const char msg[] = "hello from a bare C init\n";
    if (write(1, msg, sizeof msg - 1) < 0) return 1;
    tcdrain(1);
    if (ioperm(0xf4, 1, 1) == 0) outb(1, 0xf4);
    for (;;) pause();
}
"""


#: The guest's address in the benchmark's namespace, and the host's TAP.
GUEST, TAP = "10.0.9.2", "tapb"
HTTP_CONFIG = ["--net", f"service={TAP}", f"--ipv4={GUEST}/24"]

#: Run in the namespace: print "ping T" and "response T" (wall clock) when they first succeed.
#: A TCP connection is started every 25 ms without waiting for the earlier ones, so a SYN lost
#: before the guest's stack was up delays nothing; at most 4 are in flight, each given 0.2 s,
#: so that the guest's first answer is not queued behind a burst of requests.
PROBER = r"""
import selectors, socket, subprocess, sys, threading, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + limit
def pinger():
    while time.time() < end:
        if subprocess.run(["ping", "-c1", "-W0.2", "-n", host], capture_output=True).returncode == 0:
            print("ping", time.time(), flush=True)
            return
        time.sleep(0.1)
threading.Thread(target=pinger, daemon=True).start()
sel, started, next_try, done = selectors.DefaultSelector(), {}, 0.0, False
def drop(s):
    sel.unregister(s)
    started.pop(s, None)
    s.close()
while time.time() < end and not done:
    now = time.time()
    if now >= next_try and len(started) < 4:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        sel.register(s, selectors.EVENT_WRITE)
        started[s], next_try = now, now + 0.025
    for key, events in sel.select(timeout=0.005):
        s = key.fileobj
        if events & selectors.EVENT_WRITE:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                drop(s)
                continue
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            sel.modify(s, selectors.EVENT_READ)
        else:
            try:
                data = s.recv(12)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 200"):
                print("response", time.time(), flush=True)
                done = True
            drop(s)
    for s, t in list(started.items()):
        if now - t > 0.2:
            drop(s)
time.sleep(0.3)
"""


def build(example: str, dest: Path, *configure: str, name: str | None = None, unik: str = UNIK,
          source: Path = REPO) -> Path:
    """``examples/<example>`` of the tree ``source`` built for virtio by ``unik`` under ``dest``."""
    root = dest / (name or example)
    shutil.copytree(source / "examples" / example, root,
                    ignore=shutil.ignore_patterns("_build", "dist", "__pycache__"))
    for args in (["configure", "-t", "virtio", *configure], ["build"]):
        subprocess.run([unik, "-q", *args], cwd=root, check=True)
    return root


def image(directory: Path) -> Path:
    """The initramfs of an artifact directory (its suffix follows the compression)."""
    return next(directory.glob("initramfs.cpio*"))


def stdout_times(cmd: list[str], marks: list[bytes], cwd: Path | None = None,
                 poll: Callable[[], bool] | None = None, limit: float = LIMIT_S, env: dict[str, str] | None = None,
                 ) -> tuple[list[float | None], float | None]:
    """Seconds from start to the first output line and to lines containing each of ``marks``;
    and to the first time ``poll()`` is true (polled while waiting)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=env)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen: list[float | None] = [None] * (len(marks) + 1)
    polled: float | None = None
    buf = b""
    try:
        while time.monotonic() - start < limit:
            chunk = proc.stdout.read(65536)
            if chunk:
                buf += chunk
                now = time.monotonic() - start
                if seen[0] is None and b"\n" in buf:
                    seen[0] = now
                for i, mark in enumerate(marks):
                    if seen[i + 1] is None and mark in buf:
                        seen[i + 1] = now
            if poll is not None and polled is None and seen[0] is not None and poll():
                polled = time.monotonic() - start
            done = all(s is not None for s in seen) and (poll is None or polled is not None)
            if done or (chunk == b"" and proc.poll() is not None):
                break
            time.sleep(0.02)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # unik run and its QEMU
        except ProcessLookupError:  # already gone
            pass
        proc.wait()
    if seen[0] is None or (poll is not None and polled is None):
        print(f"  note: {' '.join(cmd[:6])}...: incomplete; console: {buf[-300:]!r}", file=sys.stderr)
    return seen, polled


def qemu_cmd(kernel: Path, initrd: Path, accel: str, args: list[str], mem: str = "256M") -> list[str]:
    spec = qemu.Boot(kernel, initrd, qemu.pick_machine("auto", accel), accel, mem=mem, args=args)
    return spec.command(qemu.qemu_binary())


def naive_initramfs(hello_image: Path, out: Path) -> None:
    """Hello's image with the whole standard library and every library, unstripped."""
    interp = Interpreter.current()
    files: dict[str, tuple[bytes, int]] = {}
    for e in read_initramfs(hello_image):
        if e.name.startswith(("app/", "init", "unik/", "dev/")) and e.data is not None and e.mode & 0o100000:
            files[e.name] = (e.data, e.mode & 0o777)
    files["usr/bin/python3"] = (interp.executable.read_bytes(), 0o755)
    binaries = [interp.executable]
    for path in sorted(interp.stdlib.rglob("*")):
        rel = path.relative_to(interp.stdlib)
        if path.is_file() and not {"site-packages", "test"} & set(rel.parts):  # Debian ships tests apart
            files[f"usr/lib/python{interp.version}/{rel.as_posix()}"] = (path.read_bytes(), 0o755)
            if path.suffix == ".so":
                binaries.append(path)
    libs: set[str] = set()
    for b in binaries:
        out_ = subprocess.run(["ldd", str(b)], capture_output=True, text=True).stdout
        libs.update(w for w in out_.split() if w.startswith("/"))
    for lib in sorted(libs):
        files[lib.lstrip("/")] = (Path(lib).read_bytes(), 0o755)
    dirs = {"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)} | {"dev", "tmp"}
    raw = io.BytesIO()
    w = cpio.Writer(raw)
    entries = [cpio.Entry.directory(d) for d in dirs] + [cpio.Entry.chardev("dev/console", 5, 1),
                                                          cpio.Entry.chardev("dev/urandom", 1, 9)]
    entries += [cpio.Entry.file(n, d, m) for n, (d, m) in files.items()]
    for e in sorted(entries, key=lambda e: e.name):
        w.add(e)
    w.close()
    out.write_bytes(gzip.compress(raw.getvalue(), 9, mtime=0))


def bare_initramfs(work: Path, out: Path) -> None:
    (work / "bare.c").write_text(BARE_INIT)
    subprocess.run(["cc", "-static", "-Os", "-o", str(work / "bare"), str(work / "bare.c")], check=True)
    raw = io.BytesIO()
    w = cpio.Writer(raw)
    w.add(cpio.Entry.directory("dev"))
    w.add(cpio.Entry.chardev("dev/console", 5, 1))
    w.add(cpio.Entry.file("init", (work / "bare").read_bytes(), 0o755))
    w.close()
    out.write_bytes(gzip.compress(raw.getvalue(), 9, mtime=0))


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(statistics.median(got), 3) if len(got) == len(values) and got else None


#: QEMU through this wrapper records when `unik run` started it (the host's share of the boot).
QEMU_WRAPPER = """#!/bin/sh
date +%s.%N > "$UNIK_BENCH_QEMU_STAMP"
exec {qemu} "$@"
"""


#: Console lines of examples/http whose times `http_figures` reports: the init's (modules
#: loaded, Python about to start) and the application's (its stack is listening).
HTTP_MARKS = {"init_line": b"unik-init: up", "serving": b"serving on"}


def _console_times(stream: IO[bytes], t0: float, marks: dict[str, bytes], seen: dict[str, float]) -> None:
    """In a thread: the wall-clock offset from ``t0`` at which each mark first appears."""
    for line in stream:
        for name, mark in marks.items():
            if name not in seen and mark in line:
                seen[name] = time.time() - t0


def http_figures(http: Path, accel: str) -> dict[str, float | None]:
    """Median seconds from `unik run` to QEMU's start (``host``), to the init's console line,
    to the application's "serving" line, to the first ping reply and to the first HTTP
    response, seen from a network namespace."""
    ns = f"unik-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    runs: list[dict[str, float]] = []
    wrapper = http.parent / f"{http.name}-qemu.sh"  # outside the application: not one of its inputs
    wrapper.write_text(QEMU_WRAPPER.format(qemu=qemu.qemu_binary()))
    wrapper.chmod(0o755)
    stamp = http.parent / f"{http.name}-qemu-started"
    env = {**os.environ, "UNIK_QEMU": str(wrapper), "UNIK_BENCH_QEMU_STAMP": str(stamp)}
    try:
        ip = ["ip", "-n", ns]
        subprocess.run([*ip, "tuntap", "add", "dev", TAP, "mode", "tap"], check=True)
        subprocess.run([*ip, "addr", "add", "10.0.9.1/24", "dev", TAP], check=True)
        subprocess.run([*ip, "link", "set", TAP, "up"], check=True)
        for _ in range(RUNS):
            limit = 40.0  # bounded: a guest that never answers must not hold the benchmark
            prober = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PROBER, GUEST, "8080",
                                       str(limit)], stdout=subprocess.PIPE, text=True)
            stamp.unlink(missing_ok=True)
            t0 = time.time()
            guest = subprocess.Popen(["ip", "netns", "exec", ns, UNIK, "run", "--accel", accel], cwd=http, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
            assert guest.stdout is not None
            seen: dict[str, float] = {}
            reader = threading.Thread(target=_console_times, args=(guest.stdout, t0, HTTP_MARKS, seen), daemon=True)
            reader.start()
            try:
                out = prober.communicate(timeout=limit + 10)[0]
            except subprocess.TimeoutExpired:
                prober.kill()
                out = prober.communicate()[0]
            finally:
                try:
                    os.killpg(guest.pid, signal.SIGKILL)  # unik run and its QEMU
                except ProcessLookupError:
                    pass
                guest.wait()
                reader.join(timeout=5)
                guest.stdout.close()
            seen.update({w[0]: float(w[1]) - t0 for w in (line.split() for line in out.splitlines()) if len(w) == 2})
            if stamp.is_file():
                seen["host"] = float(stamp.read_text()) - t0
            runs.append(seen)
            if "response" not in seen:
                print(f"  note: no HTTP response within {limit:.0f} s", file=sys.stderr)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    names = ("host", *HTTP_MARKS, "ping", "response")
    return {name: median([run.get(name) for run in runs]) for name in names}


def http_keys(net: dict[str, float | None]) -> dict[str, float | None]:
    """:func:`http_figures`' medians under their names in ``boot.json``."""
    return {
        # the guest's own phases: the kernel up to the init's line (modules loaded), Python up
        # to the application's "serving" line, then the first exchange with the namespace
        "boot_http_init_line_s": net.get("init_line"),
        "boot_http_serving_s": net.get("serving"),
        "boot_first_ping_s": net.get("ping"),
        "boot_first_response_s": net.get("response"),
        # `unik run`'s own start (imports, plugins, staleness check) before QEMU runs: the bare
        # C init is timed from QEMU's start, so the ratios also have one without it
        "unik_run_to_qemu_s": net.get("host"),
    }


def first_lines(app: Path, accel: str) -> tuple[float | None, float | None]:
    """Medians of seconds from `unik run` to the first console line and to hello's first line."""
    line, hello = [], []
    for _ in range(RUNS):
        (first, hello_line), _ = stdout_times([UNIK, "run", "--accel", accel, "--count", "1"], [b"hello"], cwd=app)
        line.append(first)
        hello.append(hello_line)
    return median(line), median(hello)


def source_kernel_figures(work: Path, accel: str) -> tuple[dict[str, object], dict[str, object]] | None:
    """unik on kernels built for its plans, and the bare C init on hello's (None: not built)."""
    from unik.cache import cache_dir

    built = cache_dir() / "kernels" / "source" / "kernels"
    wanted = os.environ.get("UNIK_BENCH_SOURCE_KERNEL")
    if wanted == "0":
        return None
    if wanted != "1" and len(list(built.glob("*/kernel.json"))) < 2:
        print("  (no kernels built from source in the cache: UNIK_BENCH_SOURCE_KERNEL=1 builds them)")
        return None
    http = build("http", work, *HTTP_CONFIG, "--kernel", "source", name="http-source")
    hello = build("hello", work, "--kernel", "source", name="hello-source")
    http_dir, hello_dir = http / "dist" / "http-virtio", hello / "dist" / "hello-virtio"
    manifest = json.loads((hello_dir / "artifact.json").read_text())["manifest"]
    http_manifest = json.loads((http_dir / "artifact.json").read_text())["manifest"]
    line, hello_line = first_lines(hello, accel)
    net = http_figures(http, accel) if os.geteuid() == 0 else {}
    bare = work / "bare.cpio.gz"
    bare_line = [stdout_times(qemu_cmd(hello_dir / "vmlinuz", bare, accel, []), [])[0][0] for _ in range(RUNS)]
    mb = 1e6
    unik_src: dict[str, object] = {
        "initramfs_mb": round(image(http_dir).stat().st_size / mb, 2),
        "kernel_mb": round((http_dir / "vmlinuz").stat().st_size / mb, 2),
        "hello_kernel_mb": round((hello_dir / "vmlinuz").stat().st_size / mb, 2),
        "kernel_build_s": http_manifest["kernel"]["build"]["build_seconds"],
        "hello_kernel_build_s": manifest["kernel"]["build"]["build_seconds"],
        "boot_first_line_s": line, "boot_first_app_line_s": hello_line,
        **http_keys(net),
    }
    bare_src: dict[str, object] = {
        "initramfs_mb": round(bare.stat().st_size / mb, 3), "kernel_mb": unik_src["hello_kernel_mb"],
        "boot_first_line_s": median(bare_line),
    }
    return unik_src, bare_src


#: Seconds `xl create` takes to the first console line are medians of this many guests, all
#: started one after another by the same dom0 (one Xen boot under QEMU TCG).
XEN_RUNS = 3


def xen_figures(work: Path) -> dict[str, object]:
    """The xen target: examples/hello's image size, and from a real Xen 4.17 booted under QEMU TCG
    (tests/xen/xen_nested.py, the test suite's harness) the seconds from `xl create` to the guest's first
    console line and to hello's."""
    sys.path[:0] = [str(REPO / "tests" / "xen"), str(REPO / "tests")]  # the harness and the tests' host_tools
    import xen_nested as nested

    hello = _build_xen("hello", work)
    out = hello / "dist" / "hello-xen"
    host = nested.prepare(Progress(quiet=True))
    files = {f"/guest/hello/{p.name}": p for p in out.iterdir()}
    script = "".join(nested.xl_create_console("/guest/hello", "hello.xl", f"run{i}") for i in range(XEN_RUNS))
    dom0 = nested.dom0_initramfs(host, script, files, work / "dom0.cpio")
    run = nested.boot(host, dom0.path, time_limit=900)
    sections = [nested.section(run, f"run{i}") for i in range(XEN_RUNS)]
    mb = 1e6
    return {
        "xen_image_mb": round(sum((out / f).stat().st_size for f in ("vmlinux", "initramfs.cpio.zst")) / mb, 2),
        "xen_kernel_elf_mb": round((out / "vmlinux").stat().st_size / mb, 2),
        "xen_initramfs_mb": round((out / "initramfs.cpio.zst").stat().st_size / mb, 2),
        "xen_dom0_mb": round(dom0.bytes / mb, 2),
        "xen_dom0_ready_s": round(run.time_of(nested.READY) or 0, 3) or None,
        "xen_xl_create_first_line_s": median([s.first_guest_line_s() if s else None for s in sections]),
        "xen_xl_create_first_app_line_s": median([s.line_s("hello") if s else None for s in sections]),
    }


def _build_xen(example: str, work: Path) -> Path:
    root = work / "xen" / example
    shutil.copytree(REPO / "examples" / example, root,
                    ignore=shutil.ignore_patterns("_build", "dist", "*.egg-info", "__pycache__"))
    for cmd in (["configure", "-t", "xen"], ["build"]):
        subprocess.run([UNIK, "-q", *cmd], cwd=root, check=True)
    return root


def xen_only() -> None:
    """`python bench/boot.py --xen`: only the xen figures, merged into results/boot.json."""
    from benchlib import RESULTS

    with tempfile.TemporaryDirectory(prefix="unik-bench-xen-") as tmp:
        figures = xen_figures(Path(tmp))
    path = RESULTS / "boot.json"
    data = json.loads(path.read_text()) if path.is_file() else {"unik": {}, "peers": {}, "ratios": {}}
    data["unik"] = {**{k: v for k, v in data.get("unik", {}).items() if not k.startswith("xen_")}, **figures}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print("boot, xen target (Xen 4.17 under QEMU TCG):")
    table([(f"unik.{k}", str(v)) for k, v in figures.items()])
    print(f"wrote {path}")


def hvt_figures(work: Path) -> dict[str, object]:
    """The hvt target against virtio under TCG, in one run (issue 22): examples/http from `unik run` to the first
    HTTP response under each (a TAP in a namespace made here), the floors (a static glibc hello under unik-hvt, and
    solo5's own hvt hello when SOLO5_SRC names a built solo5 checkout: bench/hvt.py), hello's ELF and memory floor
    and where hello's boot goes (--profile)."""
    import hvt as hvt_bench  # bench/hvt.py: the hvt target's own benchmark and helpers
    from unik_solo5.hvt_target import MONITOR

    hello = hvt_bench.build("hello", work / "hvt")
    elf = hello / "dist" / "hello-hvt" / "hello.hvt"
    http = hvt_bench.build("http", work / "hvt", f"--ipv4={hvt_bench.GUEST}/24")
    http_elf = http / "dist" / "http-hvt" / "http.hvt"
    boots = hvt_bench.http_boots(http, RUNS)["run"]
    floor_elf = hvt_bench.c_hello(work / "hvt")
    virtio = http_figures(build("http", work / "virtio", *HTTP_CONFIG), "tcg")
    hvt_first = median([b[1] for b in boots])
    virtio_first = virtio["response"]
    solo5 = hvt_bench.solo5_build()
    if isinstance(solo5, str):
        solo5_floor: dict[str, object] = {"floor_solo5_note": f"solo5's own hvt not measured: {solo5}"}
    else:
        tender, solo5_hello, how = solo5
        solo5_floor = {"floor_solo5_hvt_hello_s": round(hvt_bench.median([str(tender), "--mem=32", str(solo5_hello),
                                                                          "hello"]), 4),
                       "floor_solo5_note": how}
    mb = 1e6
    return {
        "http_first_response_s": hvt_first,
        "http_serving_s": median([b[0] for b in boots]),
        "virtio_tcg_http_first_response_s": virtio_first,
        "floor_c_hello_s": round(hvt_bench.median([str(MONITOR), "--mem", "64", str(floor_elf)]), 4),
        **solo5_floor,
        "hello_run_s": round(hvt_bench.median([str(MONITOR), str(elf), "--count", "1"]), 4),
        "hello_elf_mb": round(elf.stat().st_size / mb, 2),
        "http_elf_mb": round(http_elf.stat().st_size / mb, 2),
        "hello_mem_floor_mib": hvt_bench.memory_floor(elf),
        "hello_profile": hvt_bench.profile(elf, "--count", "1"),
        "virtio_tcg_over_hvt_first_response": round(virtio_first / hvt_first, 2)
        if virtio_first and hvt_first else None,
        "target_s": 0.1,
    }


def hvt_only() -> None:
    """`python bench/boot.py --hvt`: the hvt figures, under ``hvt`` in results/boot.json (other keys kept)."""
    from benchlib import merge

    with tempfile.TemporaryDirectory(prefix="unik-bench-hvt-") as tmp:
        figures = hvt_figures(Path(tmp))
    print("boot, hvt target (unik-hvt on KVM) against virtio under TCG:")
    table([(f"hvt.{k}", str(v)) for k, v in figures.items() if k != "hello_profile"])
    print(f"wrote {merge('boot', 'hvt', {**figures, 'load_average': load_average()})}")


def boot_against(rev: str, rounds: int) -> None:
    """``--baseline REV``: examples/hello's virtio boot under TCG, today's unik and REV's in turn."""
    short, old = baseline_unik(rev)
    sides = {"head": (UNIK, REPO), short: (str(old), old.parents[2])}
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="unik-bench-boot-baseline-") as tmp:
        apps = {label: (unik, build("hello", Path(tmp) / label, unik=unik, source=tree))
                for label, (unik, tree) in sides.items()}
        hello_lines: dict[str, list[float | None]] = {label: [] for label in sides}
        to_qemu: dict[str, list[float | None]] = {label: [] for label in sides}
        wrapper, stamp = Path(tmp) / "qemu.sh", Path(tmp) / "qemu-started"
        wrapper.write_text(QEMU_WRAPPER.format(qemu=qemu.qemu_binary()))
        wrapper.chmod(0o755)
        env = {**os.environ, "UNIK_QEMU": str(wrapper), "UNIK_BENCH_QEMU_STAMP": str(stamp)}

        def booter(label: str) -> Callable[[], float | None]:
            unik, hello = apps[label]

            def boot() -> float | None:
                stamp.unlink(missing_ok=True)
                t0 = time.time()
                (first, hello_line), _ = stdout_times([unik, "run", "--accel", "tcg", "--count", "1"], [b"hello"],
                                                      cwd=hello, env=env)
                hello_lines[label].append(hello_line)
                to_qemu[label].append(float(stamp.read_text()) - t0 if stamp.is_file() else None)
                return first
            return boot

        measures = {label: booter(label) for label in sides}
        alternate(measures, 1)  # warm: the page cache, each side's first run
        for lines in (*hello_lines.values(), *to_qemu.values()):
            lines.clear()
        first_lines_s = alternate(measures, rounds)
    # `unik run`'s own start (imports, plugins, staleness, the image's checks) before QEMU runs, then the
    # guest: the kernel to the init's first console line, Python to hello's line.
    figures = {label: {"unik_run_to_qemu_s": median_of(to_qemu[label]),
                       "boot_first_line_s": median_of(first_lines_s[label]),
                       "boot_first_app_line_s": median_of(hello_lines[label])} for label in sides}
    report_baseline("boot", "examples/hello on virtio under TCG", short, rounds, figures["head"], figures[short],
                    load_before, accelerator="tcg")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="unik-bench-boot-") as tmp:
        work = Path(tmp)
        http, hello = build("http", work, *HTTP_CONFIG), build("hello", work)
        http_dir, hello_dir = http / "dist" / "http-virtio", hello / "dist" / "hello-virtio"
        kernel = DebianKernel().kernel(None, None, Progress(quiet=True)).image
        accel = qemu.choose_accel("auto", kernel, Progress())
        first_line, first_app_line = first_lines(hello, accel)
        net = http_figures(http, accel) if os.geteuid() == 0 else {}
        response_s, host_s = net.get("response"), net.get("host")
        naive = work / "naive.cpio.gz"
        naive_initramfs(image(hello_dir), naive)
        naive_line, naive_hello = [], []
        for _ in range(RUNS):
            (first, hello_line), _ = stdout_times(
                qemu_cmd(kernel, naive, accel, ["--count=1"], mem=NAIVE_MEM), [b"hello"])
            naive_line.append(first)
            naive_hello.append(hello_line)
        bare = work / "bare.cpio.gz"
        bare_initramfs(work, bare)
        bare_line = [stdout_times(qemu_cmd(kernel, bare, accel, []), [])[0][0] for _ in range(RUNS)]
        source = source_kernel_figures(work, accel)
        xen = xen_figures(work) if os.environ.get("UNIK_BENCH_XEN") != "0" else {}

        mb = 1e6
        unik_figures = {
            "initramfs_mb": round(image(http_dir).stat().st_size / mb, 2),
            "hello_initramfs_mb": round(image(hello_dir).stat().st_size / mb, 2),
            "initramfs_compression": image(http_dir).suffix.lstrip("."),
            "kernel_mb": round((http_dir / "vmlinuz").stat().st_size / mb, 2),
            "boot_first_line_s": first_line,
            "boot_first_app_line_s": first_app_line,
            **http_keys(net),
            **xen,
        }
        peers: dict[str, dict[str, object]] = {
            "naive_image": {
                "initramfs_mb": round(naive.stat().st_size / mb, 2), "kernel_mb": unik_figures["kernel_mb"],
                "boot_first_line_s": median(naive_line), "boot_first_app_line_s": median(naive_hello),
                "boot_first_response_s": None, "mem_mb": 1024,
            },
            "bare_kernel_c_init": {
                "initramfs_mb": round(bare.stat().st_size / mb, 3), "kernel_mb": unik_figures["kernel_mb"],
                "boot_first_line_s": median(bare_line),
            },
        }

        def ratio(a: float | None, b: float | None) -> float | None:
            return round(a / b, 3) if a is not None and b else None

        if source is not None:
            peers["unik_source_kernel"], peers["bare_source_kernel_c_init"] = source

        def num(value: object) -> float | None:
            return float(value) if isinstance(value, (int, float)) else None

        bare_s = num(peers["bare_kernel_c_init"]["boot_first_line_s"])
        ratios = {
            "initramfs_naive_over_unik_hello": ratio(num(peers["naive_image"]["initramfs_mb"]),
                                                     num(unik_figures["hello_initramfs_mb"])),
            "first_line_unik_over_bare": ratio(num(unik_figures["boot_first_line_s"]), bare_s),
            "first_app_line_unik_over_naive": ratio(num(unik_figures["boot_first_app_line_s"]),
                                                    num(peers["naive_image"]["boot_first_app_line_s"])),
            "first_response_unik_over_bare_init": ratio(response_s, bare_s),
            "first_response_from_qemu_unik_over_bare_init": ratio(
                response_s - host_s if response_s is not None and host_s is not None else None, bare_s),
        }
        if source is not None:
            src, bare_src = source
            ratios["first_response_source_kernel_over_bare_init"] = ratio(num(src["boot_first_response_s"]), bare_s)
            ratios["first_response_source_kernel_over_bare_source_init"] = ratio(
                num(src["boot_first_response_s"]), num(bare_src["boot_first_line_s"]))
            src_host = num(src["unik_run_to_qemu_s"])
            src_response = num(src["boot_first_response_s"])
            ratios["first_response_from_qemu_source_kernel_over_bare_init"] = ratio(
                src_response - src_host if src_response is not None and src_host is not None else None, bare_s)
        if net and os.environ.get("UNIK_BENCH_SNAPSHOT") != "0":
            from boot_snapshot import snapshot_part

            snap, snap_ratios = snapshot_part(http, accel, bare_s, net, http_figures)
            unik_figures.update(snap)
            ratios.update(snap_ratios)
        path = write("boot", unik_figures, peers, ratios, accelerator=accel)
        print(f"boot ({accel.upper()}; medians of {RUNS} boots):")
        rows = [(f"unik.{k}", str(v)) for k, v in unik_figures.items()]
        rows += [(f"{p}.{k}", str(v)) for p, fig in peers.items() for k, v in fig.items()]
        rows += [(f"ratio {k}", str(v)) for k, v in ratios.items()]
        table(rows)
        if response_s is None:
            print("  (no HTTP response: unik-lib-tcpip does not serve TCP yet, or not root)")
        print(f"wrote {path}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--hvt"]:
        hvt_only()
    elif sys.argv[1:] == ["--xen"]:
        xen_only()
    elif sys.argv[1:] == ["--snapshot"]:
        from boot_snapshot import snapshot_only

        snapshot_only()
    elif sys.argv[1:2] == ["--baseline"] and len(sys.argv) in (3, 5):
        boot_against(sys.argv[2], int(sys.argv[4]) if len(sys.argv) == 5 and sys.argv[3] == "--rounds" else RUNS)
    elif sys.argv[1:]:
        sys.exit("usage: python bench/boot.py [--xen | --hvt | --snapshot | --baseline REV [--rounds N]]")
    else:
        main()
