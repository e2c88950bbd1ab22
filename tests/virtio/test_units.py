"""The pieces, without booting: cpio, exit statuses, QEMU command lines, silent guests, kernels, imports."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from example_support import missing_vm_tools as missing_tools
from host_tools import needs
from unik.errors import BuildError, RunError
from unik.progress import Progress
from unik_vmimage import cpio, qemu
from unik_vmimage.imports import find_modules
from unik_vmimage.initbin import SOURCE, compile_init
from unik_vmimage.kernels import (
    DebianKernel,
    Kernel,
    ModuleSource,
    PathKernel,
    modinfo_depends,
    parse_kernel_spec,
)

# -- cpio ----------------------------------------------------------------------------------


def _archive(entries: list[cpio.Entry]) -> bytes:
    out = io.BytesIO()
    w = cpio.Writer(out)
    for e in entries:
        w.add(e)
    w.close()
    return out.getvalue()


def test_cpio_newc_header_layout() -> None:
    data = _archive([cpio.Entry.file("a", b"xyz")])
    assert data[:6] == b"070701"
    assert data[6:14] == b"00000001"  # inode 1
    assert int(data[14:22], 16) == stat.S_IFREG | 0o644
    assert int(data[54:62], 16) == 3  # file size
    assert int(data[94:102], 16) == 2  # name size with its NUL
    assert data[110:112] == b"a\0" and data[112:115] == b"xyz"
    assert b"TRAILER!!!" in data and len(data) % 4 == 0


def test_cpio_round_trip_and_same_bytes_twice() -> None:
    entries = [cpio.Entry.directory("d"), cpio.Entry.file("d/f", b"hello", 0o755),
               cpio.Entry.symlink("d/l", "f"), cpio.Entry.chardev("console", 5, 1)]
    data = _archive(entries)
    assert data == _archive(entries)
    back = cpio.read_entries(data)
    assert [(e.name, e.mode, e.data, e.rdev) for e in back] == [(e.name, e.mode, e.data, e.rdev) for e in entries]


def test_cpio_refuses_duplicates() -> None:
    w = cpio.Writer(io.BytesIO())
    w.add(cpio.Entry.file("x", b""))
    with pytest.raises(ValueError, match="duplicate"):
        w.add(cpio.Entry.file("/x/", b""))


@needs("cpio")
def test_gnu_cpio_extracts_what_we_write(tmp_path: Path) -> None:
    data = _archive([cpio.Entry.directory("d"), cpio.Entry.file("d/f", b"content", 0o640),
                     cpio.Entry.symlink("d/l", "f")])
    subprocess.run(["cpio", "-idm", "--quiet"], input=data, cwd=tmp_path, check=True)
    assert (tmp_path / "d" / "f").read_bytes() == b"content"
    assert stat.S_IMODE((tmp_path / "d" / "f").stat().st_mode) == 0o640
    assert os.readlink(tmp_path / "d" / "l") == "f"


# -- exit statuses and QEMU command lines --------------------------------------------------


@pytest.mark.parametrize(("returncode", "status"), [(3, 0), (5, 1), (7, 2), (253, 125), (-9, 137), (-15, 143)])
def test_decode_status(returncode: int, status: int) -> None:
    assert qemu.decode_status(returncode, b"", b"") == status


def test_decode_big_status_from_the_init_line() -> None:
    assert qemu.decode_status(255, b"x\nunik-init: exit status 200 (reported to the host as 126)\n", b"") == 200
    assert qemu.decode_status(255, b"", b"") == 126


def test_decode_qemu_failure_and_statusless_stop() -> None:
    with pytest.raises(RunError, match=r"QEMU failed.*bad device"):
        qemu.decode_status(1, b"", b"qemu-system-x86_64: bad device\n")
    with pytest.raises(RunError, match="without reporting an exit status"):
        qemu.decode_status(0, b"Kernel panic", b"")


def test_a_guest_that_ran_out_of_memory_or_said_nothing_is_told_apart() -> None:
    panic = b"[    1.968178] Kernel panic - not syncing: System is deadlocked on memory\r\n[    1.9] CPU: 0\r\n"
    with pytest.raises(qemu.GuestStopped) as stopped:
        qemu.decode_status(0, panic, b"")
    assert str(stopped.value) == ("the guest ran out of memory (its kernel panicked: System is deadlocked on "
                                  "memory)")
    assert stopped.value.out_of_memory and not stopped.value.silent
    with pytest.raises(qemu.GuestStopped) as stopped:
        qemu.decode_status(0, b"", b"")
    assert str(stopped.value).startswith("the guest stopped before printing anything") and stopped.value.silent


def test_boot_command_line(tmp_path: Path) -> None:
    b = qemu.Boot(tmp_path / "k", tmp_path / "i", "microvm", "tcg", args=["--greeting=hi there", "--count=2"],
                  devices=["virtio-rng"])
    cmd = b.command("qemu")
    assert cmd[cmd.index("-device", cmd.index("-append")) + 1] == "virtio-rng-device"
    assert cmd.count("virtio-rng-device") == 1  # the plan's entropy device carries the boot seed too
    assert cmd[cmd.index("-accel") + 1] == "tcg" and cmd[cmd.index("-cpu") + 1] == "max,erms=off"
    assert b.kernel_cmdline().endswith(' -- "--greeting=hi there" --count=2')
    # microvm under TCG is told the TSC frequency (it cannot calibrate reliably without HPET)
    assert "tsc_early_khz=" in b.kernel_cmdline()
    assert "tsc_early_khz" not in qemu.Boot(tmp_path / "k", tmp_path / "i", "q35", "tcg").kernel_cmdline()
    q35 = qemu.Boot(tmp_path / "k", tmp_path / "i", "q35", "kvm", devices=["virtio-rng"]).command("qemu")
    assert "virtio-rng-pci" in q35 and q35[q35.index("-cpu") + 1] == "host"
    with pytest.raises(RunError, match="cannot travel"):
        qemu.Boot(tmp_path / "k", tmp_path / "i", "q35", "tcg", args=['say "hi"']).kernel_cmdline()


def test_host_tsc_khz(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text("processor\t: 0\ncpu MHz\t\t: 2596.132\n")
    assert qemu.host_tsc_khz(str(tmp_path / "cpuinfo")) == 2596132
    assert qemu.host_tsc_khz(str(tmp_path / "missing")) is None


def test_machine_per_accelerator() -> None:
    assert qemu.pick_machine("auto", "tcg") == "q35"
    assert qemu.pick_machine("auto", "kvm") == "microvm"
    assert qemu.pick_machine("microvm", "tcg") == "microvm"


# -- silent guests and fake QEMUs ----------------------------------------------------------


def _fake_qemu(tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake-qemu"
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("UNIK_QEMU", str(script))
    return script


def _gone(tmp_path: Path) -> bool:
    pid = int((tmp_path / "pid").read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_silent_guest_is_stopped_with_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, "exec sleep 60", monkeypatch)
    spec = qemu.Boot(tmp_path / "k", tmp_path / "i", "microvm", "tcg")
    start = time.monotonic()
    expected = r"printed nothing on its console within 1 s \(machine microvm, accelerator tcg\)"
    with pytest.raises(RunError, match=expected):
        qemu.boot(spec, boot_timeout=1.0, console=None)
    assert time.monotonic() - start < 50  # bounded by the timeout, not by the guest
    assert _gone(tmp_path)


def test_console_is_copied_and_status_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, "echo booted; echo oops >&2; exit 7", monkeypatch)
    console, err = io.BytesIO(), io.BytesIO()
    outcome = qemu.boot(qemu.Boot(tmp_path / "k", tmp_path / "i", "q35", "tcg"), boot_timeout=30,
                        console=console, stderr=err)
    assert outcome.status == 2 and console.getvalue() == b"booted\n" and err.getvalue() == b"oops\n"
    assert outcome.first_output_s is not None


def test_time_limit_and_signal_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, "echo up; exec sleep 60", monkeypatch)
    spec = qemu.Boot(tmp_path / "k", tmp_path / "i", "q35", "tcg")
    with pytest.raises(RunError, match="still running after 1 s"):
        qemu.boot(spec, boot_timeout=30, console=None, time_limit=1.0)
    assert _gone(tmp_path)
    outcome = qemu.boot(spec, boot_timeout=30, console=None, stop=lambda: 2)
    assert outcome.status == 130
    assert _gone(tmp_path)


def test_missing_qemu_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIK_QEMU", "/nonexistent/qemu")
    with pytest.raises(RunError, match="apt-get install qemu-system-x86"):
        qemu.qemu_binary()


# -- kernels -------------------------------------------------------------------------------


def test_kernel_specs() -> None:
    assert parse_kernel_spec("debian") == ("debian", None)
    assert parse_kernel_spec("debian:linux-image-6.1.0-9-cloud-amd64") == ("debian", "linux-image-6.1.0-9-cloud-amd64")
    assert parse_kernel_spec("/boot/vmlinuz") == ("path", "/boot/vmlinuz")
    assert parse_kernel_spec("path:k/bz") == ("path", "k/bz")


def test_path_kernel(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="does not exist"):
        PathKernel().kernel(str(tmp_path / "nope"), None, Progress(quiet=True))
    (tmp_path / "bz").write_bytes(b"kernel")
    k = PathKernel().kernel(str(tmp_path / "bz"), None, Progress(quiet=True))
    assert k.image == tmp_path / "bz" and k.module_files(["virtio_net"], Progress(quiet=True)) == []


def test_module_resolution_orders_dependencies_and_skips_builtins(tmp_path: Path) -> None:
    index = {"a": ("a.ko", ("b", "c")), "b": ("b.ko", ("c",)), "c": ("c.ko", ())}
    src = ModuleSource(frozenset({"af_packet"}), index, tmp_path)
    assert src.resolve(["a", "af_packet"]) == ["c", "b", "a"]
    with pytest.raises(BuildError, match="no module 'zz'"):
        src.resolve(["zz"])
    k = Kernel(tmp_path / "bz", "v", "test", src)
    assert k.module_files(["b"], Progress(quiet=True)) == [tmp_path / "c.ko", tmp_path / "b.ko"]


@pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))
def test_debian_kernel_modules_and_their_dependencies() -> None:
    kernel = DebianKernel().kernel(None, None, Progress(quiet=True))
    assert kernel.image.is_file() and kernel.version.endswith("cloud-amd64")
    assert "af_packet" in kernel.modules.builtin  # CONFIG_PACKET=y: nothing to load
    files = kernel.module_files(["virtio_net"], Progress(quiet=True))
    names = [f.name for f in files]
    assert names[-1] == "virtio_net.ko" and "virtio_ring.ko" in names
    assert names.index("virtio_ring.ko") < names.index("virtio_net.ko")
    assert set(modinfo_depends(files[-1].read_bytes())) >= {"virtio", "virtio_ring"}


@pytest.mark.slow
@pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))
def test_kvm_probe_answers_and_tcg_fallback_is_announced() -> None:
    kernel = DebianKernel().kernel(None, None, Progress(quiet=True))
    ok, why = qemu.probe_kvm(kernel.image, use_cache=False)  # bounded by PROBE_TIMEOUT_S
    assert ok or why  # a failed probe says why
    stream = io.StringIO()
    accel = qemu.choose_accel("auto", kernel.image, Progress(stream=stream))
    assert accel == ("kvm" if ok else "tcg")
    assert ("KVM does not boot guests here" in stream.getvalue()) == (not ok)
    assert qemu.choose_accel("tcg", kernel.image, Progress(stream=stream)) == "tcg"


# -- the init and the import finder --------------------------------------------------------


@needs("cc")
def test_init_compiles_without_warnings_and_is_static(tmp_path: Path) -> None:
    out = compile_init(tmp_path / "unik-init")  # -Wall -Wextra -Werror
    ldd = subprocess.run(["ldd", str(out)], capture_output=True, text=True)
    assert "not a dynamic executable" in ldd.stdout + ldd.stderr
    assert SOURCE.read_text().count("isa-debug-exit") >= 1


def test_import_finder_rules(tmp_path: Path) -> None:
    for name in ("for_types", "optional", "windows", "lazy", "dynamic", "pydoc", "top", "ssl"):
        (tmp_path / f"{name}.py").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub.py").write_text("from . import sibling\n")
    (tmp_path / "pkg" / "sibling.py").write_text("")
    (tmp_path / "main.py").write_text(textwrap.dedent("""\
        import sys
        import top
        from pkg import sub
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import for_types
        try:
            import optional
            import ssl
        except ImportError:
            optional = ssl = None
        if sys.platform == "win32":
            import windows
        import pydoc
        def later():
            import lazy
        __import__("dynamic")
    """))
    found = find_modules(tmp_path / "main.py", [tmp_path])
    assert {"top", "pkg", "pkg.sub", "pkg.sibling", "lazy", "dynamic", "optional"} <= set(found.modules)
    for absent in ("for_types", "windows", "pydoc", "ssl"):  # heavy optional imports stay out
        assert absent not in found.modules, absent
    assert "ssl" in found.optional
    assert "pydoc" in find_modules(tmp_path / "main.py", [tmp_path], ["pydoc"]).modules  # asked for by name


def test_qemu_dies_with_a_killed_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, "echo up; exec sleep 60", monkeypatch)
    code = (
        "import sys; from pathlib import Path; from unik_vmimage import qemu; "
        "qemu.boot(qemu.Boot(Path('k'), Path('i'), 'q35', 'tcg'), boot_timeout=30, console=sys.stdout.buffer)"
    )
    runner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert runner.stdout is not None and runner.stdout.readline() == b"up\n"
    runner.kill()  # SIGKILL: the runner cannot clean up itself
    runner.wait()
    for _ in range(100):  # bounded: 5 s
        if _gone(tmp_path):
            break
        time.sleep(0.05)
    assert _gone(tmp_path)


def test_no_seed_travels_on_the_command_line() -> None:
    """QEMU's argv is public (ps): every boot gets virtio-rng for its seed, and no secret in argv."""
    import re

    for machine in ("q35", "microvm"):
        cmd = qemu.Boot(Path("/img/vmlinuz"), Path("/img/initramfs"), machine, "tcg").command("qemu")
        assert cmd.count(qemu.device_arg(qemu.SEED_DEVICE, machine)) == 1
        text = " ".join(cmd)
        assert "seed" not in text and not re.search(r"[0-9a-f]{32}", text), text

