"""What the deploy tests share: examples/http built with ``--image``, a namespace with a TAP, QEMU as engines boot it.

The image is built once per session (conftest's ``deploy_app``) with a static address,
so that a disk booted by firmware alone, or a kernel booted as KubeVirt's launcher
would, serves on 10.97.0.2 behind the namespace's TAP at 10.97.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from host_tools import require, require_file
from tap_support import netns_with
from unik_vmimage import qemu
from unik_vmimage.disk import gpt

GUEST = "10.97.0.2"
HOST = "10.97.0.1"
TAP = "tapd0"
#: OVMF under TCG: the firmware alone takes tens of seconds on a loaded host.
SERVE_TIMEOUT_S = 300.0
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


def manifest(artifact: Path) -> dict[str, Any]:
    """The artifact's ``artifact.json`` manifest."""
    data: dict[str, Any] = json.loads((artifact / "artifact.json").read_text())["manifest"]
    return data


@contextlib.contextmanager
def tap_netns(tag: str) -> Iterator[str]:
    """A namespace holding TAP :data:`TAP` at :data:`HOST`/24, removed afterwards (root only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and TAP devices)")
    require("curl", "ip")
    with netns_with(f"unik-{tag}-{os.getpid()}", ["tuntap", "add", "dev", TAP, "mode", "tap"],
                    ["addr", "add", f"{HOST}/24", "dev", TAP], ["link", "set", TAP, "up"]) as name:
        yield name


def nic_args(mac: str) -> list[str]:
    """The guest's NIC on :data:`TAP`, with the MAC the plan gave it, as the runner attaches it."""
    return ["-netdev", f"tap,id=net-service,ifname={TAP},script=no,downscript=no",
            "-device", qemu.nic_device("virtio-net-pci", "service", mac)]


def base_command(mem: str) -> list[str]:
    """QEMU on q35 under TCG, the serial port on standard output, virtio-rng: what every engine gives."""
    return [qemu.QEMU, "-M", "q35", "-accel", "tcg", "-cpu", qemu.TCG_CPU, "-m", mem, "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-device", qemu.DEBUG_EXIT, "-device", "virtio-rng-pci"]


def uefi_args(tmp: Path, disk: Path, fmt: str, snapshot: bool = True) -> list[str]:
    """OVMF (its code read-only, a private copy of its variables) and the disk as the only boot device.

    ``snapshot``: the guest's writes go to a temporary overlay, not the disk.
    """
    for path in (OVMF_CODE, OVMF_VARS):
        require_file(path, "ovmf")
    variables = tmp / "OVMF_VARS.fd"
    shutil.copyfile(OVMF_VARS, variables)
    return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
            "-drive", f"file={disk},if=none,id=boot,format={fmt},snapshot={'on' if snapshot else 'off'}",
            "-device", "virtio-blk-pci,drive=boot,bootindex=1"]


def serve_and_curl(netns: str, command: Sequence[str]) -> tuple[str, list[str]]:
    """Start ``command`` (QEMU) in ``netns``, wait for "serving on", curl the guest: (page, console)."""
    guest = subprocess.Popen(["ip", "netns", "exec", netns, *command], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        assert guest.stdout is not None
        console: list[str] = []
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while not (console and console[-1].startswith("serving on ")):
            line = guest.stdout.readline().decode(errors="replace")
            assert line and time.monotonic() < deadline, "the guest never served:\n" + "".join(console[-60:])
            console.append(line)
        page = subprocess.run(["ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "20", "--retry", "3",
                               f"http://{GUEST}:8080/"], capture_output=True, text=True)
        assert "<h1>Hello from unik</h1>" in page.stdout, page.stderr + "".join(console[-60:])
        return page.stdout, console
    finally:
        guest.kill()
        guest.wait()


def read_layout(disk: Path) -> gpt.Layout:
    """The GPT of the disk image file ``disk``, every CRC checked (:func:`gpt.read_gpt`)."""
    fd = os.open(disk, os.O_RDONLY)
    try:
        return gpt.read_gpt(fd)
    finally:
        os.close(fd)
