"""Snapshot figures of the virtio target (issue 20): restore against cold boot against a bare kernel.

Part of ``bench/boot.py`` (its ``main`` adds them; ``python bench/boot.py --snapshot`` measures
only these and merges them into ``results/boot.json``, other keys kept).  On the accelerator
``unik run`` picks, for ``examples/http`` on a TAP in a namespace (``boot.http_figures``'s
prober, medians of its runs):

* ``snapshot_save_wall_s`` — what ``unik run --save-snapshot`` adds to a build: from starting
  it to the snapshot on disk (a cold boot to the application's readiness, then the save);
  ``snapshot_ready_s`` and ``snapshot_save_s`` split it as the runner measured;
* ``snapshot_state_mb`` — the migration stream on disk (``state.bin``);
* ``snapshot_restore_first_response_s`` — from ``unik run`` to the first HTTP response when it
  restores, and ``..._from_qemu_s`` from QEMU's start (``unik run``'s own start taken off);
* ``snapshot_cold_first_response_s`` — the same image booted cold (``--no-snapshot``) in the
  same run;
* ``snapshot_restore_rss_mb`` / ``snapshot_cold_rss_mb`` — QEMU's resident memory once the
  restored guest runs again / once the cold one serves (on QEMU's user network);

and the ratios, against the bare kernel's boot to its C init (the brief's target is
0.5 or less) and against the cold boot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suites' served_support

from served_support import stop

UNIK = str(Path(sys.executable).with_name("unik"))
#: A restored or booted guest must show its line within this (TCG on a loaded host).
LINE_TIMEOUT_S = 180.0


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _rss_mb(pid: int) -> float | None:
    """The resident memory of ``pid`` in MB (``VmRSS``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) * 1024 / 1e6, 1)
    except OSError:
        pass
    return None


def _wait_line(stream: IO[str], text: str, found: threading.Event) -> None:
    for line in stream:
        if text in line:
            found.set()


def qemu_rss(http: Path, accel: str, *args: str, line: str, on_stderr: bool) -> float | None:
    """QEMU's resident memory (MB) once ``line`` shows, for ``unik run ARGS`` on QEMU's user network."""
    proc = subprocess.Popen([UNIK, "run", "--accel", accel, "--net", "service=user", *args], cwd=http,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = threading.Event()
    watched, other = (proc.stderr, proc.stdout) if on_stderr else (proc.stdout, proc.stderr)
    assert watched is not None and other is not None
    threading.Thread(target=_wait_line, args=(watched, line, found), daemon=True).start()
    threading.Thread(target=lambda: other.read(), daemon=True).start()
    try:
        if not found.wait(LINE_TIMEOUT_S):
            return None
        time.sleep(0.5)  # settled
        qemus = [c for c in _children(proc.pid) if "qemu" in Path(f"/proc/{c}/comm").read_text()]
        return _rss_mb(qemus[0]) if qemus else None
    finally:
        stop(proc, 60)


def save_snapshot(http: Path, accel: str) -> tuple[float, dict[str, object]]:
    """Seconds ``unik run --save-snapshot`` took (on QEMU's user network), and the snapshot's manifest."""
    t0 = time.monotonic()
    subprocess.run([UNIK, "-q", "run", "--accel", accel, "--net", "service=user", "--save-snapshot"], cwd=http,
                   check=True, capture_output=True, timeout=600)
    took = time.monotonic() - t0
    manifest = next((http / "dist").glob("*-virtio")) / "snapshot" / "snapshot.json"
    data: dict[str, object] = json.loads(manifest.read_text())
    return took, data


def snapshot_part(http: Path, accel: str, bare_init_s: float | None, cold: dict[str, float | None],
                  measure: Callable[[Path, str], dict[str, float | None]],
                  ) -> tuple[dict[str, object], dict[str, float | None]]:
    """The figures and ratios above; ``cold`` is ``boot.http_figures`` of ``http`` booted cold, and
    ``measure`` that function (called once more, now that a snapshot exists: the runs restore)."""
    wall, manifest = save_snapshot(http, accel)
    restored = measure(http, accel)
    restore_s, restore_host = restored.get("response"), restored.get("host")
    from_qemu = restore_s - restore_host if restore_s is not None and restore_host is not None else None
    cold_s = cold.get("response")
    figures: dict[str, object] = {
        "snapshot_save_wall_s": round(wall, 3),
        "snapshot_ready_s": manifest.get("ready_s"),
        "snapshot_save_s": manifest.get("save_s"),
        "snapshot_state_mb": round(int(manifest.get("state_bytes", 0)) / 1e6, 1),  # type: ignore[call-overload]
        "snapshot_restore_first_response_s": restore_s,
        "snapshot_restore_first_response_from_qemu_s": round(from_qemu, 3) if from_qemu is not None else None,
        "snapshot_cold_first_response_s": cold_s,
        "snapshot_bare_kernel_init_s": bare_init_s,
        "snapshot_restore_rss_mb": qemu_rss(http, accel, line="restored from the snapshot", on_stderr=True),
        "snapshot_cold_rss_mb": qemu_rss(http, accel, "--no-snapshot", line="serving on", on_stderr=False),
    }
    ratios = {
        "snapshot_restore_response_over_bare_init": _ratio(restore_s, bare_init_s),
        "snapshot_restore_response_from_qemu_over_bare_init": _ratio(from_qemu, bare_init_s),
        "snapshot_restore_over_cold_response": _ratio(restore_s, cold_s),
    }
    return figures, ratios


def merge(path: Path, figures: dict[str, object], ratios: dict[str, float | None], accel: str) -> None:
    """Put the ``snapshot_*`` keys into ``path`` (results/boot.json), the others kept."""
    data = json.loads(path.read_text()) if path.is_file() else {"unik": {}, "peers": {}, "ratios": {}}
    for section, new in (("unik", figures), ("ratios", ratios)):
        kept = {k: v for k, v in data.get(section, {}).items() if not k.startswith("snapshot_")}
        data[section] = {**kept, **new}
    data["snapshot_accelerator"] = accel
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def snapshot_only() -> None:
    """``python bench/boot.py --snapshot``: the bare kernel, the cold boot and the restore, in one run."""
    import tempfile

    import boot
    from benchlib import RESULTS, table
    from unik.progress import Progress
    from unik_vmimage import qemu
    from unik_vmimage.kernels import DebianKernel

    if os.geteuid() != 0:
        sys.exit("bench/boot.py --snapshot needs root (a namespace and a TAP for the HTTP prober)")
    with tempfile.TemporaryDirectory(prefix="unik-bench-snapshot-") as tmp:
        work = Path(tmp)
        http = boot.build("http", work, *boot.HTTP_CONFIG)
        kernel = DebianKernel().kernel(None, None, Progress(quiet=True)).image
        accel = qemu.choose_accel("auto", kernel, Progress())
        bare = work / "bare.cpio.gz"
        boot.bare_initramfs(work, bare)
        bare_s = boot.median([boot.stdout_times(boot.qemu_cmd(kernel, bare, accel, []), [])[0][0]
                              for _ in range(boot.RUNS)])
        cold = boot.http_figures(http, accel)
        figures, ratios = snapshot_part(http, accel, bare_s, cold, boot.http_figures)
    path = RESULTS / "boot.json"
    merge(path, figures, ratios, accel)
    print(f"boot from a snapshot ({accel.upper()}; medians of {boot.RUNS} runs each):")
    table([*((f"unik.{k}", str(v)) for k, v in figures.items()), *((f"ratio {k}", str(v)) for k, v in ratios.items())])
    print(f"wrote {path}")
