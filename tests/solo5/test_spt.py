"""The spt target end to end: hello, the sandbox's state, block devices, manifest, policy."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from host_tools import needs
from solo5_support import UNIK, build, make_app, need_sandbox, sandboxed_pid, unik
from unik_solo5.policy import POLICY, admitted

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "plugins" / "solo5" / "README.md"


def test_hello_runs_under_spt(tmp_path: Path) -> None:
    need_sandbox()
    app = tmp_path / "hello"
    shutil.copytree(ROOT / "examples" / "hello", app, ignore=shutil.ignore_patterns("_build", "dist"))
    build(app)
    proc = unik(app, "run", "--count", "2", "--greeting", "bonjour")
    assert proc.stdout.splitlines() == ["bonjour", "bonjour"]


def test_the_running_application_is_sealed(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "sealed", 'console.log("ready")\nawait sleep.sleep(60)\n',
                   params="console: Console, sleep: Sleep", imports="Console, Sleep")
    build(app)
    proc = subprocess.Popen([UNIK, "run"], cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        pid = sandboxed_pid(str(app))
        status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(r"^Seccomp:\s+2$", status, re.M), status
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
        for ns in ("mnt", "net", "ipc", "uts", "pid"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), "PID 1 of its own PID namespace"
        assert os.listdir(f"/proc/{pid}/root") == []
        # The host's files are out of sight: one mount, an empty read-only tmpfs as "/".
        mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        assert len(mounts) == 1, mounts
        fields = mounts[0].split()
        assert fields[4] == "/" and " - tmpfs unik-spt ro" in mounts[0], mounts
        assert Path("/etc/passwd").exists() and not Path(f"/proc/{pid}/root/etc/passwd").exists()
        assert not Path(f"/proc/{pid}/cwd/etc").exists() and os.readlink(f"/proc/{pid}/cwd") == "/"
        fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
        # stdin (/dev/null), stdout, stderr, the loop's epoll and self-pipe pair: no report pipe.
        assert len(fds) == 6 and fds[:3] == [0, 1, 2], fds
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


BLOCK_APP = '''\
if mode == "write":
    big = bytes(range(256)) * 1024          # 256 KiB: beyond the unix target's inline limit
    await storage.write(8, big)
    await storage.write(1, b"spt!" * 128)
    await storage.flush()
    assert await storage.read(8, len(big) // 512) == big
    console.log(f"wrote {storage.sectors} sectors")
else:
    data = await storage.read(1, 1)
    console.log(f"read {data[:8].decode()}")
'''


def test_block_device_writes_and_reads_back_under_the_filter(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "blk", BLOCK_APP, params='console: Console, storage: Block, *, mode: str = "write"',
                   imports="Block, Console")
    build(app)
    disk = app / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    proc = unik(app, "run", "--block", "storage=disk.img")
    assert proc.stdout.splitlines() == ["wrote 2048 sectors"]
    raw = disk.read_bytes()
    assert raw[512:1024] == b"spt!" * 128
    assert raw[8 * 512:8 * 512 + 256 * 1024] == bytes(range(256)) * 1024
    proc = unik(app, "run", "--mode", "read", "--", "--block:storage=disk.img")  # solo5's syntax
    assert proc.stdout.splitlines() == ["read spt!spt!"]


def test_manifest_and_device_checks(tmp_path: Path) -> None:
    app = make_app(tmp_path, "both", "return 0", params="service: Network, storage: Block",
                   imports="Block, Network")
    build(app)
    manifest = json.loads((app / "dist" / "both-spt" / "app" / "manifest.json").read_text())
    assert manifest == {"type": "solo5.manifest", "version": 1, "devices": [
        {"name": "service", "type": "NET_BASIC"}, {"name": "storage", "type": "BLOCK_BASIC"}]}
    for name in ("disk.img", "d"):  # present, so that the device checks are what fails
        (app / name).write_bytes(bytes(512))
    proc = unik(app, "run", "--block", "storage=disk.img", check=False)
    assert proc.returncode == 1 and "NET_BASIC device 'service'" in proc.stderr
    proc = unik(app, "run", "--", "--net:service=t0", "--block:storage=d", "--block:other=x", check=False)
    assert proc.returncode == 1 and "'other' is not a device" in proc.stderr


def _readme_rows() -> list[tuple[str, str]]:
    text = README.read_text()
    table = text.split("| system call | arguments | why |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.strip().splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[1]))
    return rows


def test_policy_matches_readme(tmp_path: Path) -> None:
    app = make_app(tmp_path, "pol", "return 0")
    build(app)
    out = unik(app, "run", "-t", "spt", "--show-policy").stdout.splitlines()
    assert unik(app, "run", "--", "--show-policy").stdout.splitlines() == out  # solo5's spelling after --
    assert f"{len(admitted())} system calls" in out[0]
    printed = [re.split(r"\s{2,}", line.strip()) for line in out[1:out.index("")]]
    assert [(p[0], p[1]) for p in printed] == _readme_rows() == [(r.syscall, r.args_text()) for r in POLICY]
    assert f"unik's spt admits {len(admitted())}" in README.read_text()


@needs("ip")
def test_tap_device_in_a_test_namespace(tmp_path: Path) -> None:
    need_sandbox()
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun")
    body = '''\
frame = b"\\xff" * 6 + service.mac + b"\\x88\\xb5" + b"unik spt".ljust(46, b"\\0")
await service.write(frame)
console.log(f"mtu {service.mtu} sent {service.stats.tx_frames} mac {service.mac.hex(':')} on {service.ifname}")
'''
    app = make_app(tmp_path, "tapper", body, params="console: Console, service: Network",
                   imports="Console, Network")
    build(app)
    ns = f"unikspt{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "tuntap", "add", "dev", "spt0", "mode", "tap", "vnet_hdr"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "spt0", "mtu", "1400"], check=True)
        proc = subprocess.run(["ip", "netns", "exec", ns, UNIK, "run", "--", "--net:service=spt0",
                               "--net-mac:service=02:00:00:00:00:42"], cwd=app,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == ["mtu 1400 sent 1 mac 02:00:00:00:00:42 on spt0"]
        proc = subprocess.run(["ip", "netns", "exec", ns, UNIK, "run", "--net", "service=spt0"], cwd=app,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        mac = proc.stdout.split(" mac ")[1].split()[0]
        assert mac != "02:00:00:00:00:42" and int(mac[:2], 16) & 3 == 2, mac  # random, local, unicast
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_an_application_error_prints_its_traceback_under_the_filter(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "oops", 'console.log("up")\nraise ValueError("broken on purpose")\n')
    build(app)
    proc = unik(app, "run", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "ValueError: broken on purpose" in proc.stderr
    assert 'raise ValueError("broken on purpose")' in proc.stderr  # the source line, read before the filter
    assert "killed by the sandbox" not in proc.stderr


def test_the_tender_alone_names_the_refused_call(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "alone", "import os\nos.getppid()\n")
    build(app)
    tender = Path(str(__import__("unik_solo5").__file__)).with_name("unik-spt")
    entry = app / "dist" / "alone-spt" / "app" / "__spt__.py"
    proc = subprocess.run([str(tender), "--", sys.executable, "-I", "-S", str(entry)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 128 + 31
    assert "seccomp refused system call number 110" in proc.stderr
