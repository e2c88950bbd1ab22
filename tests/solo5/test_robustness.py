"""The spt target's rough edges: randomness under the filter, missing devices, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from solo5_support import UNIK, build, make_app, need_sandbox, unik

TENDER = Path(str(__import__("unik_solo5").__file__)).with_name("unik-spt")

RANDOM_APP = '''\
from unik_entropy import sources
first, second = random.generate(32), random.generate(32)
await sleep.sleep(1.3)                     # past the first periodic reseed round
names = ",".join(sorted(s.name for s in random.rng.sources))
console.log(f"{type(random).__name__} sealed={sources.sealed()} sources={names}")
console.log(f"differ={first != second != random.generate(32)} rounds={random.rounds >= 1} "
            f"failures={random.failures}")
'''


def test_random_is_fortuna_seeded_before_the_filter(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "rng", RANDOM_APP, params="console: Console, random: Random, sleep: Sleep",
                   imports="Console, Random, Sleep")
    build(app)
    describe = unik(app, "describe").stdout
    assert "entropy.fortuna" in describe and "getrandom" not in describe
    proc = unik(app, "run")
    head, tail = proc.stdout.splitlines()
    assert head.startswith("FortunaRandom sealed=True sources="), head
    assert set(head.split("sources=")[1].split(",")) <= {"rdseed", "rdrand", "jitter"}, head
    assert "jitter" in head  # always there: it needs only the CPU's time-stamp counter
    assert tail == "differ=True rounds=True failures=[]"


def _net_app(tmp_path: Path) -> Path:
    app = make_app(tmp_path, "netapp", 'console.log("up")', params="console: Console, service: Network",
                   imports="Console, Network")
    build(app)
    return app


def test_a_missing_tap_is_named(tmp_path: Path) -> None:
    need_sandbox()
    app = _net_app(tmp_path)
    # unik run refuses it before starting the tender, in the words the unix and virtio runners use
    proc = unik(app, "run", "--net", "service=ukmissing0", check=False)
    assert proc.returncode == 1, proc.stderr
    assert ("unik: error: network device service: there is no TAP ukmissing0 here: create it first "
            "(ip tuntap add ukmissing0 mode tap; ip addr add ... dev ukmissing0), or let unik make one: "
            "--net service=auto") in proc.stderr
    assert not Path("/sys/class/net/ukmissing0").exists()  # not created on open either
    proc = unik(app, "run", "--net", "service=lo", check=False)
    assert proc.returncode == 1 and "network device service: lo is not a TAP device" in proc.stderr
    # the tender, run by hand, says the same
    tender = subprocess.run([str(TENDER), "--net:service=ukmissing0", "--", "true"], capture_output=True, text=True)
    assert tender.returncode == 125
    assert "unik-spt: network device service: there is no TAP ukmissing0 here: create it first" in tender.stderr


def test_a_missing_block_file_is_named(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "blkapp", 'console.log("up")', params="console: Console, storage: Block",
                   imports="Block, Console")
    build(app)
    proc = unik(app, "run", "--block", "storage=nope.img", check=False)
    assert proc.returncode == 1 and "block device 'storage': nope.img does not exist" in proc.stderr
    # The tender alone (no unik run in front) names it too.
    entry = app / "dist" / "blkapp-spt" / "app" / "__spt__.py"
    proc = subprocess.run([str(TENDER), f"--block:storage={tmp_path}/gone.img", "--", sys.executable, "-I", "-S",
                           str(entry)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125
    assert f"block device storage: cannot open {tmp_path}/gone.img read-write: No such file" in proc.stderr
    (app / "dir.img").mkdir()
    proc = unik(app, "run", "--block", "storage=dir.img", check=False)  # refused before the tender starts
    assert proc.returncode == 1 and "block device 'storage': dir.img is a directory" in proc.stderr
    proc = subprocess.run([str(TENDER), f"--block:storage={app}/dir.img", "--", sys.executable, "-I", "-S",
                           str(entry)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125 and "dir.img read-write: Is a directory" in proc.stderr
    os.mkfifo(app / "fifo.img")
    proc = unik(app, "run", "--block", "storage=fifo.img", check=False)
    assert proc.returncode == 125 and "fifo.img is not a regular file or block device" in proc.stderr


def test_ctrl_c_ends_the_run_cleanly(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "ctrlc", 'console.log("ready")\nawait sleep.sleep(60)\n',
                   params="console: Console, sleep: Sleep", imports="Console, Sleep")
    build(app)
    # A terminal's Ctrl-C: SIGINT to the whole foreground process group (unik run, the
    # tender and the sandboxed application all get it).
    proc = subprocess.Popen([UNIK, "run"], cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + signal.SIGINT, err
        assert out == "" and "Traceback" not in err and "killed by the sandbox" not in err, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert _running(str(app)) == [], "left running"


def _running(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_sighup_to_the_tender_ends_the_run(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "hup", 'console.log("ready")\nawait sleep.sleep(60)\n',
                   params="console: Console, sleep: Sleep", imports="Console, Sleep")
    build(app)
    entry = app / "dist" / "hup-spt" / "app" / "__spt__.py"
    proc = subprocess.Popen([str(TENDER), "--", sys.executable, "-I", "-S", str(entry)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGHUP)  # PID 1 of its namespace has no SIGHUP handler: forwarded as SIGTERM
        proc.communicate(timeout=30)
        assert proc.returncode == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


CHURN_APP = '''\
import gc
total = 0
for round in range(6):
    grown = bytearray()
    for i in range(2000):                      # realloc of a large block: mremap
        grown += bytes(range(256)) * 8
    big = [bytes(1 << 20) for _ in range(40)]  # 40 MiB in mmap'ed blocks, then freed
    small = [{"k": str(i), "v": [i] * 8} for i in range(60000)]  # obmalloc arenas and the brk heap
    total += len(grown) + sum(map(len, big)) + len(small)
    del grown, big, small
    gc.collect()
    await sleep.sleep(0.01)
console.log(f"churned {total}")
'''


def test_memory_churn_stays_within_the_allowlist(tmp_path: Path) -> None:
    """glibc malloc and obmalloc growing and trimming their heaps need no call the filter refuses."""
    need_sandbox()
    app = make_app(tmp_path, "churn", CHURN_APP, params="console: Console, sleep: Sleep",
                   imports="Console, Sleep")
    build(app)
    proc = unik(app, "run", timeout=120)
    assert proc.stdout.splitlines() == [f"churned {6 * (2000 * 2048 + 40 * (1 << 20) + 60000)}"]


def test_the_application_ends_when_unik_run_is_killed(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "orphan", 'console.log("ready")\nawait sleep.sleep(60)\n',
                   params="console: Console, sleep: Sleep", imports="Console, Sleep")
    build(app)
    proc = subprocess.Popen([UNIK, "run"], cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        assert len(_running(str(app))) == 2  # the tender and the application
        proc.kill()  # no chance to forward anything
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while _running(str(app)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _running(str(app)) == [], "the tender or the application outlived unik run"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
