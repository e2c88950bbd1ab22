"""A VM's life: unik run -d, ps, logs, a graceful stop through the ACPI power button, --dry-run.

examples/kv keeps its store in memory until it is disconnected (``sync = false``):
only a stop that reaches the application (QEMU's system_powerdown, the init's
netlink listener, SIGTERM, the devices disconnected in reverse order) leaves the
written key on the disk, which fsck.fat and mtools then check.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest
from example_support import copy_example
from host_tools import require
from lifecycle_support import built_held_kv, fat_tools_missing, fsck_clean, instances, mdir, mtype, unik, wait_for_log
from unik.instances import process_start

#: Boot, Python's start and the first writes under TCG, with other tests running.
UP_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def kv_vm(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/kv (flushed only on disconnect) built for virtio."""
    return built_held_kv(tmp_path_factory.mktemp("kv"), "virtio")


def test_stop_presses_the_power_button_and_the_fat_disk_keeps_every_write(kv_vm: Path, tmp_path: Path) -> None:
    why = fat_tools_missing()
    if why:
        pytest.skip(why)
    state, disk = tmp_path / "state", kv_vm / "disk.img"
    name = unik(kv_vm, "run", "-d", "--block", f"storage={disk}", "--hold", "--key", "notes/Long Name.txt",
                "--value", "kept by the power button", state=state).stdout.strip()
    assert name == "kv"
    record = instances(kv_vm, state)["kv"]
    assert record["target"] == "virtio" and record["state"] == "running"
    qemu = record["details"]["qemu_pid"]  # type: ignore[index]
    assert process_start(qemu) is not None
    log = wait_for_log(kv_vm, "kv", "holding the store open", state, timeout=UP_TIMEOUT_S)
    assert log.index("unik: booting kv-virtio") < log.index("unik-init: up at") < log.index("boot #1")

    stopped = unik(kv_vm, "stop", "--timeout", "120", "kv", state=state)
    assert "kv stopped" in stopped.stderr
    log = unik(kv_vm, "logs", "kv", state=state).stdout
    assert "asking the guest to stop (ACPI power button)" in log
    assert "unik-init: the power button: stopping" in log
    assert "exit status 143" in log
    assert instances(kv_vm, state)["kv"]["shown_state"] == "exited (143)"
    assert process_start(qemu) is None
    fsck_clean(disk)
    assert mtype(disk, "/kv/notes/Long Name.txt") == "kept by the power button"
    assert mtype(disk, "/kv/meta/boots") == "1"
    assert "Long Name.txt" in mdir(disk, "/kv/notes")
    unik(kv_vm, "rm", "kv", state=state)


def test_the_boot_seed_is_in_no_process_list_and_no_artifact(kv_vm: Path, tmp_path: Path) -> None:
    """A running VM: QEMU's argv (what `ps` shows every local user) holds no seed; the init got its
    seed from virtio-rng and credited it; nothing seed-like is in the artifact."""
    state, disk = tmp_path / "state", kv_vm / "blank.img"
    disk.write_bytes(b"\0" * (8 << 20))
    unik(kv_vm, "run", "-d", "--block", f"storage={disk}", "--hold", state=state)
    try:
        qemu = instances(kv_vm, state)["kv"]["details"]["qemu_pid"]  # type: ignore[index]
        argv = Path(f"/proc/{qemu}/cmdline").read_bytes().split(b"\0")
        log = wait_for_log(kv_vm, "kv", "holding the store open", state, timeout=UP_TIMEOUT_S)
    finally:
        unik(kv_vm, "stop", "--timeout", "120", "kv", state=state, check=False)
    assert any(a.startswith(b"virtio-rng") for a in argv), argv
    assert not any(b"unik_seed" in a or re.search(rb"[0-9a-fA-F]{32}", a) for a in argv), argv
    assert "32 seed bytes from the hardware RNG" in log, log
    for path in (kv_vm / "dist").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".xl", ""):
            assert b"unik_seed" not in path.read_bytes(), path


def test_dry_run_prints_the_qemu_command(kv_vm: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = unik(kv_vm, "run", "--dry-run", "--block", f"storage={kv_vm / 'disk.img'}", "--key", "a b",
               state=state).stdout
    words = shlex.split(out)
    assert words[0].endswith("qemu-system-x86_64") and out.count("\n") == 1
    assert words[words.index("-kernel") + 1] == str(kv_vm / "dist" / "kv-virtio" / "vmlinuz")
    assert "-qmp" in words and any(w.startswith("file=") and "disk.img" in w for w in words)
    assert words[words.index("-append") + 1].endswith('-- "--key=a b"')
    assert instances(kv_vm, state) == {}


def test_a_missing_disk_is_refused_before_anything_starts(kv_vm: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    failed = unik(kv_vm, "run", "-d", "--block", "storage=/nonexistent/disk.img", state=state, check=False)
    assert failed.returncode == 1
    assert "/nonexistent/disk.img does not exist: create it first" in failed.stderr
    assert instances(kv_vm, state) == {}


def test_a_vm_that_dies_at_start_stays_listed_with_its_output(kv_vm: Path, tmp_path: Path) -> None:
    state, qemu = tmp_path / "state", tmp_path / "qemu"
    qemu.write_text("#!/bin/sh\necho 'qemu-system-x86_64: -drive file=disk.img: Could not open: busy' >&2\nexit 1\n")
    qemu.chmod(0o755)
    (kv_vm / "disk.img").touch()
    unik(kv_vm, "run", "-d", "--block", f"storage={kv_vm / 'disk.img'}", state=state, env={"UNIK_QEMU": str(qemu)})
    for _ in range(100):  # bounded: 10 s
        if instances(kv_vm, state)["kv"]["shown_state"] != "running":
            break
        time.sleep(0.1)
    assert instances(kv_vm, state)["kv"]["shown_state"] == "exited (1)"
    assert "Could not open: busy" in unik(kv_vm, "logs", "kv", state=state).stdout


def test_inspect_lists_the_kernel_its_modules_python_and_the_application(kv_vm: Path, tmp_path: Path) -> None:
    data = json.loads(unik(kv_vm, "inspect", "--json", state=tmp_path / "state").stdout)
    by_kind: dict[str, set[str]] = {}
    for f in data["files"]:
        by_kind.setdefault(f["kind"], set()).add(f["name"] or f["path"])
    assert {"button", "virtio_blk", "virtio_pci"} <= by_kind["kernel module"]
    assert by_kind["kernel"] == {data["facts"]["kernel"].split(" ")[0]}
    assert by_kind["init"] == {"init"}
    assert {"asyncio", "_socket"} <= by_kind["standard library"]
    assert by_kind["application"] == {"kv_app"}
    assert {"unik", "unik_fat", "unik_vmguest", "unik_fdio"} <= by_kind["library"]
    assert "usr/bin/python3" in by_kind["interpreter"]
    assert data["total"]["bytes"] == sum(f["size"] for f in data["files"])
    text = unik(kv_vm, "inspect", state=tmp_path / "state").stdout
    assert "kernel module: 9 files" in text and "initramfs: initramfs.cpio" in text  # with virtio_rng: the seed


@pytest.fixture(scope="module")
def http_user_vm(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/http for virtio on QEMU's user network (no TAP, no root needed)."""
    root = copy_example("http", tmp_path_factory.mktemp("http"))
    unik(root, "configure", "-t", "virtio", "--net", "service=user", state=root / "state")
    unik(root, "build", state=root / "state")
    return root


def test_http_detached_on_the_user_network_is_listed_with_its_port_and_stopped(
        http_user_vm: Path, tmp_path: Path) -> None:
    require("curl")
    state = tmp_path / "state"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rule = f"127.0.0.1:{port}:8080"
    assert unik(http_user_vm, "run", "-d", "--publish", rule, state=state).stdout == "http\n"
    log = wait_for_log(http_user_vm, "http", "serving on 10.0.2.15:8080", state, timeout=UP_TIMEOUT_S)
    assert f"published: 127.0.0.1:{port} -> 8080/tcp" in log
    line = unik(http_user_vm, "ps", state=state).stdout.splitlines()[1].split()
    assert line[:3] == ["http", "virtio", "running"] and line[-1] == rule
    page = subprocess.run(["curl", "-sS", "--retry", "5", "--retry-connrefused", "--max-time", "30",
                           f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=200)
    assert "Hello from unik" in page.stdout, page.stderr
    unik(http_user_vm, "stop", "--timeout", "120", "http", state=state)
    assert instances(http_user_vm, state)["http"]["shown_state"] == "exited (143)"
    assert "unik-init: the power button: stopping" in unik(http_user_vm, "logs", "http", state=state).stdout
    unik(http_user_vm, "rm", "http", state=state)
