"""--mem under spt: a memory cgroup (v2 where delegated, else v1's controller), RLIMIT_AS always."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
from solo5_support import UNIK, build, make_app, need_sandbox, sandboxed_pid
from unik_solo5 import memory

MOUNTS_HYBRID = """\
30 20 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
31 20 0:27 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
"""
MOUNTS_V2 = "31 20 0:27 / /sys/fs/cgroup rw,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"


def _host(tmp_path: Path, mountinfo: str, cgroups: str) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text(mountinfo)
    (tmp_path / "proc/self/cgroup").write_text(cgroups)
    return tmp_path


def test_a_delegated_cgroup_v2_gets_memory_max_and_no_swap(tmp_path: Path) -> None:
    root = _host(tmp_path, MOUNTS_V2, "0::/user.slice/unik.service\n")
    own = root / "sys/fs/cgroup/user.slice/unik.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.subtree_control").write_text("memory pids\n")
    (own / f"{memory.PREFIX}old").mkdir()  # a run that could not clean up: swept
    cgroup, how = memory.make(128, "t1", root=root)
    assert cgroup is not None and cgroup.version == 2 and how == "cgroup v2 memory.max"
    assert (cgroup.path / "memory.max").read_text() == str(128 << 20)
    assert not (own / f"{memory.PREFIX}old").exists()
    (cgroup.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroup.oom_kills() == 1
    assert memory.address_space_mib(128, cgroup) == 256


def test_a_v2_cgroup_without_the_memory_controller_falls_back_to_v1(tmp_path: Path) -> None:
    """This host's layout: a hybrid whose v2 hierarchy holds no memory controller."""
    root = _host(tmp_path, MOUNTS_HYBRID, "4:memory:/process_api/abc\n0::/\n")
    (root / "sys/fs/cgroup/unified").mkdir(parents=True)
    (root / "sys/fs/cgroup/unified/cgroup.controllers").write_text("hugetlb\n")
    (root / "sys/fs/cgroup/unified/cgroup.subtree_control").write_text("\n")
    own = root / "sys/fs/cgroup/memory/process_api/abc"
    own.mkdir(parents=True)
    cgroup, how = memory.make(64, "t2", root=root)
    assert cgroup is not None and cgroup.version == 1 and how == "cgroup v1 memory.limit_in_bytes"
    assert (cgroup.path / "memory.limit_in_bytes").read_text() == str(64 << 20)
    (cgroup.path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cgroup.oom_kills() == 2


def test_without_a_memory_cgroup_rlimit_as_alone_says_why(tmp_path: Path) -> None:
    root = _host(tmp_path, MOUNTS_V2, "0::/\n")
    (root / "sys/fs/cgroup").mkdir(parents=True)
    (root / "sys/fs/cgroup/cgroup.controllers").write_text("cpu pids\n")
    (root / "sys/fs/cgroup/cgroup.subtree_control").write_text("cpu\n")
    cgroup, why = memory.make(256, "t3", root=root)
    assert cgroup is None and "not delegated" in why
    assert memory.address_space_mib(256, None) == 256


def test_the_running_application_is_in_its_memory_cgroup(tmp_path: Path) -> None:
    """On this host: the kernel bounds the application's resident memory at --mem; the cgroup goes with the run."""
    need_sandbox()
    probe, how = memory.make(64, "probe")
    if probe is None:
        pytest.skip(f"no memory cgroup here: {how}")
    probe.remove()
    app = make_app(tmp_path, "bounded", 'console.log("ready")\nawait sleep.sleep(60)\n',
                   params="console: Console, sleep: Sleep", imports="Console, Sleep")
    build(app)
    proc = subprocess.Popen([UNIK, "run", "--mem", "96M"], cwd=app, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        pid = sandboxed_pid(str(app))
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        where = next(line for line in lines if re.match(r"^\d+:([^:]*,)?memory(,[^:]*)?:|^0::", line)
                     and memory.PREFIX in line)
        cgroup = probe.path.parent / where.rsplit(":", 1)[1].rsplit("/", 1)[1]
        assert (cgroup / probe.limit_file).read_text().strip() == str(96 << 20)
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert re.search(rf"^Max address space\s+{192 << 20}\s+{192 << 20}\s+bytes", limits, re.M), limits
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not cgroup.exists()
