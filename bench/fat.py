"""How fast is unik's FAT? Sequential I/O and small files, next to raw I/O, pyfatfs and mtools.

One image file (1 GiB, FAT32 with 4 KiB clusters, formatted afresh by mkfs.fat for each
contender) and, for each contender:

* sequential write then read of a 256 MiB file in 1 MiB requests (MB/s, MB = 10^6 bytes);
  each contender runs three times, each on a freshly formatted image; figures are medians;
* creating 10,000 small files (100 directories of 100, 100 bytes each) and stat-ing
  every one (files/s for both phases together).

unik's figures are also given per CPU second of its process (``*_per_cpu_s``), which
other work on a shared machine disturbs less than the wall clock.

``raw_io`` is ``os.pwrite`` / ``os.pread`` of 1 MiB requests at the same offsets of the
same file: the ceiling.  unik runs on its own ``ImageBlock`` (pread/pwrite) and
flushes at the end of each phase, without fdatasync: no contender syncs to the disk.
pyfatfs (PyPI) is slow on small files, so it creates 1,000 (10 directories of 100):
its rate is per second like everyone's.  mtools copies a host tree in one ``mcopy -s``
and lists it with one ``mdir -/``.

``--baseline REV`` adds unik_fat as it was at git revision REV (its sources, today's
compiled accelerator when its C source is the same): each run of today's unik and of
REV's runs in a fresh process, in turn (now, REV, now, REV...), so that a regression is
measured in one run on one machine, not against figures from another day.

    python bench/fat.py [--quick] [--baseline REV]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import table, write
from unik_fat.accel import impl as accel_impl
from unik_fat.fs import FatFileSystem
from unik_fat.image import ImageBlock

IMAGE_SIZE = 1 << 30
IO = 1 << 20
SMALL = b"s" * 100
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def fresh_image(path: Path) -> None:
    """Zero-length sparse file of IMAGE_SIZE, formatted by mkfs.fat (4 KiB clusters)."""
    if path.exists():
        path.unlink()
    with open(path, "wb") as f:
        f.truncate(IMAGE_SIZE)
    subprocess.run(["mkfs.fat", "-F", "32", "-s", "8", str(path)], check=True, capture_output=True)


def mbps(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / 1e6, 1)


#: Sequential figures are the median of this many runs, each on a freshly formatted image.
REPEAT = 3
#: With --baseline, today's unik and the baseline run this many times each, in turn.
BASELINE_REPEAT = 5


def median_runs(fn: Callable[..., dict[str, float] | None], *args: object) -> dict[str, float] | None:
    """Run ``fn`` REPEAT times (``None``: the contender is missing); the median of each figure."""
    runs = [fn(*args) for _ in range(REPEAT)]
    done = [r for r in runs if r is not None]
    if len(done) < len(runs):
        return None
    return {k: statistics.median(r[k] for r in done) for k in done[0]}


# --- raw I/O ---------------------------------------------------------------------------


def bench_raw(path: Path, size: int) -> dict[str, float]:
    fresh_image(path)
    fd = os.open(path, os.O_RDWR)
    base = 64 << 20  # somewhere in the data region
    buf = os.urandom(IO)
    t = time.perf_counter()
    for off in range(0, size, IO):
        os.pwrite(fd, buf, base + off)
    w = time.perf_counter() - t
    t = time.perf_counter()
    for off in range(0, size, IO):
        os.pread(fd, IO, base + off)
    r = time.perf_counter() - t
    os.close(fd)
    return {"seq_write_mbps": mbps(size, w), "seq_read_mbps": mbps(size, r)}


# --- unik ------------------------------------------------------------------------------


async def _unik(path: Path, size: int, dirs: int, per_dir: int) -> dict[str, float]:
    block = ImageBlock(path, fsync=False)  # no contender syncs to the disk
    fs = await FatFileSystem.mount(block)
    buf = os.urandom(IO)
    t, c = time.perf_counter(), time.process_time()
    f = await fs.open("/big.bin", "wb")
    for _ in range(0, size, IO):
        await f.write(buf)
    await f.close()
    await fs.flush()
    w, w_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    f = await fs.open("/big.bin", "rb")
    while await f.read(IO):
        pass
    await f.close()
    r, r_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    for d in range(dirs):
        await fs.mkdir(f"/tree/dir {d}", parents=True)
        for i in range(per_dir):
            f = await fs.open(f"/tree/dir {d}/small file {i}.txt", "wb")
            await f.write(SMALL)
            await f.close()
    await fs.flush()
    for d in range(dirs):
        for i in range(per_dir):
            st = await fs.stat(f"/tree/dir {d}/small file {i}.txt")
            assert st.size == len(SMALL)
    s, s_cpu = time.perf_counter() - t, time.process_time() - c
    await fs.disconnect()
    await block.disconnect()
    # Per CPU second of this process too: on a shared machine these move less than the
    # wall-clock figures when other work competes for the cores.
    return {"seq_write_mbps": mbps(size, w), "seq_read_mbps": mbps(size, r),
            "small_files_per_s": round(dirs * per_dir / s, 1), "small_files": dirs * per_dir,
            "seq_write_mb_per_cpu_s": mbps(size, w_cpu), "seq_read_mb_per_cpu_s": mbps(size, r_cpu),
            "small_files_per_cpu_s": round(dirs * per_dir / s_cpu, 1)}


def bench_unik(path: Path, size: int, dirs: int, per_dir: int) -> dict[str, float]:
    fresh_image(path)
    out = asyncio.run(_unik(path, size, dirs, per_dir))
    fsck = subprocess.run(["fsck.fat", "-n", str(path)], capture_output=True, text=True)
    if fsck.returncode:
        raise SystemExit(f"fsck.fat complains about unik's image:\n{fsck.stdout}")
    return out


# --- unik at another revision, each run in its own process ------------------------------

REPO = Path(__file__).resolve().parent.parent
FAT_SRC = "plugins/libs/fat/src"


def baseline_tree(rev: str, dest: Path) -> Path:
    """unik_fat's sources at git revision ``rev`` under ``dest``, with today's compiled accelerator."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, FAT_SRC], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"--baseline {rev}: git archive failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    old, now = dest / FAT_SRC / "unik_fat", REPO / FAT_SRC / "unik_fat"
    if (old / "_accel.c").read_bytes() != (now / "_accel.c").read_bytes():
        raise SystemExit(f"--baseline {rev}: its _accel.c differs from today's, whose build this bench "
                         "borrows; compare against a revision with the same C source")
    for built in now.glob("_accel*.so"):
        shutil.copy(built, old)
    return dest / FAT_SRC


def bench_unik_process(src: Path | None, path: Path, size: int, dirs: int, per_dir: int) -> dict[str, float]:
    """:func:`bench_unik` in a fresh process, on unik_fat from ``src`` (``None``: today's)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, __file__, "--unik-only", str(path), str(size), str(dirs), str(per_dir)],
                         env=env, check=True, capture_output=True, text=True).stdout
    figures: dict[str, Any] = json.loads(out.splitlines()[-1])
    if figures.pop("accelerator") != accel_impl.__name__:
        raise SystemExit(f"unik_fat from {src} ran without today's accelerator: not a fair comparison")
    return figures


# --- pyfatfs -----------------------------------------------------------------------------


def bench_pyfatfs(path: Path, size: int, dirs: int, per_dir: int) -> dict[str, float] | None:
    if "pkg_resources" not in sys.modules:
        # pyfatfs needs PyFilesystem2 ("fs"), which still imports pkg_resources (gone from
        # setuptools >= 81) for a namespace declaration and entry points: a stand-in.
        shim = types.ModuleType("pkg_resources")
        shim.declare_namespace = lambda name: None  # type: ignore[attr-defined]
        shim.iter_entry_points = lambda group, name=None: iter(())  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    try:
        from pyfatfs.PyFatFS import PyFatFS
    except ImportError:
        print("  pyfatfs not installed (pip install pyfatfs): skipped")
        return None
    fresh_image(path)
    fs = PyFatFS(str(path))
    buf = os.urandom(IO)
    t = time.perf_counter()
    with fs.openbin("/big.bin", "w") as f:
        for _ in range(0, size, IO):
            f.write(buf)
    fs.close()
    w = time.perf_counter() - t
    fs = PyFatFS(str(path))
    t = time.perf_counter()
    with fs.openbin("/big.bin", "r") as f:
        while f.read(IO):
            pass
    r = time.perf_counter() - t
    t = time.perf_counter()
    fs.makedir("/tree")
    for d in range(dirs):
        fs.makedir(f"/tree/dir {d}")
        for i in range(per_dir):
            with fs.openbin(f"/tree/dir {d}/small file {i}.txt", "w") as f:
                f.write(SMALL)
    for d in range(dirs):
        for i in range(per_dir):
            fs.getinfo(f"/tree/dir {d}/small file {i}.txt", namespaces=["details"])
    fs.close()
    s = time.perf_counter() - t
    return {"seq_write_mbps": mbps(size, w), "seq_read_mbps": mbps(size, r),
            "small_files_per_s": round(dirs * per_dir / s, 1), "small_files": dirs * per_dir}


# --- mtools ------------------------------------------------------------------------------


def bench_mtools(path: Path, tmp: Path, size: int, dirs: int, per_dir: int) -> dict[str, float] | None:
    if not shutil.which("mcopy"):
        print("  mtools not installed: skipped")
        return None
    fresh_image(path)
    host = tmp / "big.bin"
    with open(host, "wb") as f:
        for _ in range(0, size, IO):
            f.write(os.urandom(IO))
    tree = tmp / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    for d in range(dirs):
        (tree / f"dir {d}").mkdir(parents=True, exist_ok=True)
        for i in range(per_dir):
            (tree / f"dir {d}" / f"small file {i}.txt").write_bytes(SMALL)
    t = time.perf_counter()
    subprocess.run(["mcopy", "-i", str(path), str(host), "::/big.bin"], check=True, env=MTOOLS_ENV)
    w = time.perf_counter() - t
    t = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["mcopy", "-i", str(path), "::/big.bin", "-"], check=True, stdout=null, env=MTOOLS_ENV)
    r = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(["mcopy", "-s", "-i", str(path), str(tree), "::/"], check=True, env=MTOOLS_ENV)
    listing = subprocess.run(["mdir", "-/", "-i", str(path), "::/tree"], check=True, env=MTOOLS_ENV,
                             capture_output=True, text=True).stdout
    s = time.perf_counter() - t
    assert listing.count("small file") >= dirs * per_dir
    return {"seq_write_mbps": mbps(size, w), "seq_read_mbps": mbps(size, r),
            "small_files_per_s": round(dirs * per_dir / s, 1), "small_files": dirs * per_dir}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 MiB and 1,000 files (a smoke run)")
    parser.add_argument("--baseline", metavar="REV", help="also unik_fat at git revision REV, in the same run")
    parser.add_argument("--unik-only", nargs=4, help=argparse.SUPPRESS)  # IMAGE SIZE DIRS PER_DIR: one run, JSON
    args = parser.parse_args()
    if args.unik_only:
        img, *numbers = args.unik_only
        size, dirs, per = (int(n) for n in numbers)
        print(json.dumps({**bench_unik(Path(img), size, dirs, per), "accelerator": accel_impl.__name__}))
        return 0
    size = (32 if args.quick else 256) << 20
    dirs = 10 if args.quick else 100
    if not shutil.which("mkfs.fat"):
        print("fat: mkfs.fat (dosfstools) is needed to format the image: skipped")
        return 0
    with tempfile.TemporaryDirectory(dir=os.environ.get("UNIK_BENCH_DIR", "/var/tmp")) as d:
        tmp = Path(d)
        img = tmp / "fat.img"
        print(f"fat: {size >> 20} MiB sequential in 1 MiB requests; small files; image {img}")
        raw = median_runs(bench_raw, img, size)
        assert raw is not None
        peers: dict[str, dict[str, Any]] = {"raw_io": raw}
        unik: dict[str, float] | None
        if args.baseline:
            old_src = baseline_tree(args.baseline, tmp)
            now_runs, old_runs = [], []
            for _ in range(BASELINE_REPEAT):  # in turn, so that the machine's drift hits both alike
                now_runs.append(bench_unik_process(None, img, size, dirs, 100))
                old_runs.append(bench_unik_process(old_src, img, size, dirs, 100))
            unik = {k: statistics.median(r[k] for r in now_runs) for k in now_runs[0]}
            peers[f"unik@{args.baseline}"] = {k: statistics.median(r[k] for r in old_runs) for k in old_runs[0]}
        else:
            unik = median_runs(bench_unik, img, size, dirs, 100)
        assert unik is not None
        py = median_runs(bench_pyfatfs, img, size, max(1, dirs // 10), 100)
        if py:
            peers["pyfatfs"] = py
        mt = median_runs(bench_mtools, img, tmp, size, dirs, 100)
        if mt:
            peers["mtools"] = mt
    ratios: dict[str, float] = {
        "seq_write_vs_raw": round(unik["seq_write_mbps"] / raw["seq_write_mbps"], 3),
        "seq_read_vs_raw": round(unik["seq_read_mbps"] / raw["seq_read_mbps"], 3),
    }
    for peer, label in (("pyfatfs", "pyfatfs"), ("mtools", "mtools"), (f"unik@{args.baseline}", "baseline")):
        if peer in peers:
            for fig, short in (("seq_write_mbps", "seq_write"), ("seq_read_mbps", "seq_read"),
                               ("small_files_per_s", "small_files"), ("seq_write_mb_per_cpu_s", "seq_write_cpu"),
                               ("seq_read_mb_per_cpu_s", "seq_read_cpu"), ("small_files_per_cpu_s", "small_files_cpu")):
                if fig in peers[peer]:
                    ratios[f"{short}_vs_{label}"] = round(unik[fig] / peers[peer][fig], 2)
    rows = [(f"unik {k}", str(v)) for k, v in unik.items()]
    for peer, figs in peers.items():
        rows += [(f"{peer} {k}", str(v)) for k, v in figs.items()]
    rows += [(f"ratio {k}", f"{v}x") for k, v in ratios.items()]
    table(rows)
    print(f"  (unik's FAT accelerator: {accel_impl.__name__})")
    if not args.quick:
        path = write("fat", unik, peers, ratios)
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
