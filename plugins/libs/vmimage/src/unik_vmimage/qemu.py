"""Booting images under QEMU: the command line, the KVM probe, the console and the exit status.

The guest's init reports the application's exit status through QEMU's
``isa-debug-exit`` device by writing ``status + 1``; QEMU then exits with
``((status + 1) << 1) | 1``, which keeps it apart from QEMU's own failures (1) and from a
guest that stopped without a status (0: a panic with ``panic=-1``, or a power-off).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from unik.cache import cache_dir, settled, write_atomic
from unik.errors import RunError
from unik.progress import Progress

from .guestconsole import GuestConsole
from .memory import qemu_mib
from .qmp import option as qmp_option
from .qmp import powerdown

QEMU = "qemu-system-x86_64"
DEBUG_EXIT = "isa-debug-exit,iobase=0xf4,iosize=0x01"
#: Kernel command line shared by every boot (the arguments are added per boot).  It holds no
#: secret: QEMU's argv is in every local user's ``ps``.  The guest's boot seed comes through
#: virtio-rng instead (:data:`SEED_DEVICE`).
#: ``cryptomgr.notests``: the kernel's crypto self-tests (unik's guest uses none of those
#: algorithms) were the biggest initcall of Debian's kernel under TCG, 0.28 s of 1.0 s.
#: ``ipv6.disable_ipv6=1``: the guest kernel configures no IPv6 on any interface (its AF_INET6
#: sockets still work), so unik's stack alone speaks IPv6 on the NIC: the kernel would
#: otherwise make the same link-local and SLAAC addresses from the same MAC, answer their
#: neighbour solicitations and reset TCP connections to them.
#: ``no_timer_check``: the kernel skips its check that the IO-APIC timer ticks within a busy
#: loop; on a loaded host TCG's virtual time lags and the check panicked a guest at boot
#: ("IO-APIC + timer doesn't work!") though its timer works (distributions' VM images set it).
BASE_CMDLINE = ("console=ttyS0", "quiet", "panic=-1", "i8042.noaux", "i8042.nomux", "i8042.nopnp",
                "i8042.dumbkbd", "cryptomgr.notests", "ipv6.disable_ipv6=1", "no_timer_check")
#: Every boot has a virtio-rng device (QEMU's built-in backend: the host's getrandom): the
#: init reads its boot seed there, where only the guest can read it, and credits it.
SEED_DEVICE = "virtio-rng"
PR_SET_PDEATHSIG = 1
#: The CPU under TCG: everything QEMU emulates but ERMS.  With ERMS the guest kernel and
#: glibc copy and clear memory with ``rep movsb``/``rep stosb``, which TCG runs one byte
#: per step; without it they move eight bytes a step or use vector loops.  Measured here
#: (8 boots each, q35): the zstd initramfs unpacks 0.21 s sooner, Python reaches
#: "serving" 6% sooner, a bare kernel boots 4% sooner.
TCG_CPU = "max,erms=off"
PROBE_STATUS = 42
PROBE_TIMEOUT_S = 8.0
DEFAULT_BOOT_TIMEOUT_S = {"kvm": 20.0, "tcg": 90.0}
#: How long a guest asked to stop (its power button pressed) may take before it is killed.
STOP_GRACE_S = 30.0
_BIG_STATUS = re.compile(rb"unik-init: exit status (\d+)")


def qemu_binary() -> str:
    """The QEMU executable, or a :class:`RunError` saying how to install it."""
    found = shutil.which(os.environ.get("UNIK_QEMU", QEMU))
    if not found:
        raise RunError(f"{QEMU} is not installed: apt-get install qemu-system-x86 (or set UNIK_QEMU)")
    return found


def kvm_usable() -> str | None:
    """Why KVM cannot even be tried (``None`` when /dev/kvm is there and writable)."""
    if not os.path.exists("/dev/kvm"):
        return "there is no /dev/kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not accessible to this user"
    return None


def host_tsc_khz(cpuinfo: str = "/proc/cpuinfo") -> int | None:
    """The host CPU's clock in kHz (``cpu MHz``): the TSC frequency a TCG guest sees."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":", 1)[1]) * 1000)
    except (OSError, ValueError):
        pass
    return None


def pick_machine(machine: str, accel: str) -> str:
    """``auto`` is microvm under KVM and q35 under TCG (its HPET makes TSC calibration robust)."""
    if machine != "auto":
        return machine
    return "microvm" if accel == "kvm" else "q35"


#: virtio-net features that would hand the guest frames with partial checksums or GRO.
GUEST_OFFLOADS_OFF = "guest_csum=off,guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off"


def nic_device(family: str, name: str, mac: str) -> str:
    """The ``-device`` value of network device ``name`` on ``-netdev`` ``net-<name>``.

    No checksum offload towards the guest: frames read from an AF_PACKET ring carry no
    checksum metadata, so a partial checksum from the host's kernel would look corrupt
    to unik's stack (ping, not checksum-offloaded, worked; TCP did not).
    """
    return f"{family},netdev=net-{name},mac={mac},{GUEST_OFFLOADS_OFF}"


def device_arg(device: str, machine: str) -> str:
    """``virtio-rng[,props]`` as ``virtio-rng-pci`` on q35 and ``virtio-rng-device`` on microvm."""
    family, sep, props = device.partition(",")
    return (f"{family}-device" if machine == "microvm" else f"{family}-pci") + sep + props


def kernel_cmdline(options: Sequence[str], args: Sequence[str]) -> str:
    """The kernel's ``options``, then ``--`` and the application's ``args`` (quoted where they hold a space).

    An argument holding a double quote, a newline or a NUL, or an empty one, cannot be
    carried: :class:`RunError`.
    """
    for arg in args:
        if any(c in arg for c in '"\n\0') or not arg:
            raise RunError(f"argument {arg!r} cannot travel on the kernel command line")
    quoted = [f'"{a}"' if " " in a else a for a in args]
    return " ".join([*options, *(["--", *quoted] if quoted else [])])


@dataclass
class Boot:
    """Everything one boot needs."""

    kernel: Path
    initramfs: Path
    machine: str
    accel: str
    mem: str = "256M"
    cmdline: Sequence[str] = BASE_CMDLINE
    args: Sequence[str] = ()
    devices: Sequence[str] = ()
    extra: Sequence[str] = ()
    #: A QMP socket QEMU serves (:mod:`unik_vmimage.qmp`): a stop then presses the power button.
    qmp: Path | None = None

    def kernel_cmdline(self) -> str:
        """The kernel command line; arguments after ``--`` go to the application.

        Under TCG on microvm the TSC frequency is given (``tsc_early_khz``): the guest
        calibrates its TSC against the PIT, which fails when the host descheduled the
        vCPU during the measurement, and microvm has no HPET or ACPI PM timer to fall
        back on — the kernel then hangs before printing anything (4 boots in 10 with the
        host's CPU loaded; 0 in 8 with the frequency given).
        """
        tsc: list[str] = []
        if self.machine == "microvm" and self.accel == "tcg":
            khz = host_tsc_khz()
            tsc = [f"tsc_early_khz={khz}"] if khz else []
        return kernel_cmdline([*self.cmdline, *tsc], self.args)

    def command(self, qemu: str) -> list[str]:
        """The QEMU command line."""
        machine = "microvm,x-option-roms=off,rtc=on,isa-serial=on" if self.machine == "microvm" else self.machine
        cpu = "host" if self.accel == "kvm" else TCG_CPU
        cmd = [
            qemu, "-M", machine, "-accel", self.accel, "-cpu", cpu, "-m", f"{qemu_mib(self.mem)}M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", "stdio", "-device", DEBUG_EXIT,
            "-kernel", str(self.kernel), "-initrd", str(self.initramfs), "-append", self.kernel_cmdline(),
        ]
        seed = [] if any(d.partition(",")[0] == SEED_DEVICE for d in self.devices) else [SEED_DEVICE]
        for dev in [*self.devices, *seed]:
            cmd += ["-device", device_arg(dev, self.machine)]
        if self.qmp is not None:
            cmd += qmp_option(self.qmp)
        return [*cmd, *self.extra]


def _die_with_parent() -> None:
    """In the QEMU child: be killed when the runner dies, even by SIGKILL (no orphaned VMs).

    QEMU also gets its own process group: a Ctrl-C on the terminal reaches the runner
    only, which stops the guest gracefully instead of QEMU quitting at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgid(0, 0)


@dataclass
class Outcome:
    """How a boot ended."""

    status: int
    returncode: int
    #: Seconds from starting QEMU to the guest's first console output (``None``: silent).
    first_output_s: float | None
    output: bytes


class GuestStopped(RunError):
    """The guest stopped without reporting an exit status: a panic, or a power-off.

    ``silent``: it printed nothing at all; ``out_of_memory``: its kernel said it ran out.
    """

    def __init__(self, message: str, silent: bool, out_of_memory: bool) -> None:
        super().__init__(message)
        self.silent, self.out_of_memory = silent, out_of_memory


#: What the guest kernel prints when it panics for want of memory (``Out of memory and no
#: killable processes``, ``System is deadlocked on memory`` while unpacking the initramfs).
_OUT_OF_MEMORY = re.compile(rb"Kernel panic - not syncing: (Out of memory[^\r\n]*|System is deadlocked on memory)")


def decode_status(returncode: int, output: bytes, stderr: bytes) -> int:
    """The application's exit status from QEMU's, or a :class:`RunError` (:class:`GuestStopped`)."""
    if returncode < 0:
        return 128 - returncode
    if returncode >= 3 and returncode % 2 == 1:
        status = (returncode >> 1) - 1
        if status == 126:
            found = _BIG_STATUS.findall(output)
            if found:
                return int(found[-1])
        return status
    if returncode == 0:
        oom = _OUT_OF_MEMORY.search(output)
        if oom:
            raise GuestStopped(f"the guest ran out of memory (its kernel panicked: {oom.group(1).decode()})",
                               False, True)
        if not output.strip():
            raise GuestStopped("the guest stopped before printing anything (a kernel panic with the console "
                               "quiet, or it powered itself off)", True, False)
        raise GuestStopped("the guest stopped without reporting an exit status (a kernel panic, or it "
                           "powered itself off): see its console output above", False, False)
    err = stderr.decode(errors="replace").strip()
    raise RunError(f"QEMU failed (exit status {returncode}): {err or 'no message'}")


def boot(
    boot_spec: Boot, *, boot_timeout: float, console: BinaryIO | None,
    stderr: BinaryIO | None = None, keep_output: bool = False,
    stop: Callable[[], int | None] | None = None, time_limit: float | None = None,
    force: Callable[[], bool] | None = None, started: Callable[[int], None] | None = None,
    grace: float = STOP_GRACE_S,
) -> Outcome:
    """Boot, copy the console to ``console`` as it comes, return how it ended.

    A guest that prints nothing within ``boot_timeout`` seconds is killed and a
    :class:`RunError` says so, as does one still running after ``time_limit`` seconds.
    QEMU is killed whatever happens.  ``stop`` is polled: a signal number it returns
    asks the guest to stop — its ACPI power button is pressed through the QMP socket
    (``boot_spec.qmp``) and the guest's own exit status is returned — or, without a QMP
    socket, when ``force()`` turns true or after ``grace`` seconds, QEMU is killed and
    the status is 128 + signal.  ``started`` is told QEMU's pid.
    """
    cmd = boot_spec.command(qemu_binary())
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_die_with_parent)
    if started is not None:
        started(proc.pid)
    guest = GuestConsole(proc, console, stderr=stderr, keep=keep_output)
    pressed: float | None = None
    stopped: int | None = None

    def tick() -> None:
        nonlocal pressed, stopped
        if stop is not None and stopped is None and pressed is None:
            asked = stop()
            if asked is not None and boot_spec.qmp is not None and proc.poll() is None:
                try:
                    powerdown(boot_spec.qmp)
                    pressed = time.monotonic()
                    if stderr is not None:
                        stderr.write(b"unik: asking the guest to stop (ACPI power button); again to kill it\n")
                        stderr.flush()
                except RunError:
                    stopped = asked
                    proc.kill()
            elif asked is not None:
                stopped = asked
                proc.kill()
        if pressed is not None and stopped is None and (
                (force is not None and force()) or time.monotonic() - pressed > grace):
            stopped = (stop() if stop is not None else None) or signal.SIGTERM
            proc.kill()
            if stderr is not None:
                why = "asked again" if force is not None and force() else f"not stopped within {grace:g} s"
                stderr.write(f"unik: the guest is killed ({why})\n".encode())
                stderr.flush()
        if stopped is None and guest.silent_for(boot_timeout):
            proc.kill()
            proc.wait()
            raise RunError(
                f"the guest printed nothing on its console within {boot_timeout:g} s "
                f"(machine {boot_spec.machine}, accelerator {boot_spec.accel}); it is stopped. "
                f"Try --machine q35, --accel tcg or a longer --boot-timeout. QEMU: {' '.join(cmd)}"
            )
        if time_limit is not None and guest.elapsed() > time_limit:
            proc.kill()
            proc.wait()
            raise RunError(f"the guest was still running after {time_limit:g} s; it is stopped")

    returncode = guest.follow(tick, 0.1)
    if stopped is not None:
        return Outcome(128 + stopped, returncode, guest.first, bytes(guest.out))
    status = decode_status(returncode, bytes(guest.out) or guest.tail, bytes(guest.err))
    return Outcome(status, returncode, guest.first, bytes(guest.out))


# -- the KVM probe ------------------------------------------------------------------------


def _probe_initramfs(directory: Path) -> Path:
    path = directory / "probe-initramfs.cpio"
    if not path.is_file():
        # image tools, imported here: most runs find the probe's answer cached
        from . import cpio
        from .initbin import init_binary

        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            w = cpio.Writer(f)
            w.add(cpio.Entry.directory("dev"))
            w.add(cpio.Entry.chardev("dev/console", 5, 1))
            w.add(cpio.Entry.file("init", init_binary().read_bytes(), 0o755))
            w.close()
        tmp.replace(path)
    return path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _kernel_digest(kernel: Path, directory: Path) -> str:
    """The SHA-256 of ``kernel``, remembered per path, size, inode and change time.

    Hashing the ~14 MB kernel cost more than the rest of a run's start; a rebuilt
    kernel (same content, new file) is hashed once and keeps its probe answer.
    """
    path = kernel.resolve()
    st = path.stat()
    stat_key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_ino}\0{st.st_ctime_ns}".encode()).hexdigest()
    remembered = directory / f"kernel-{stat_key[:24]}.sha256"
    try:
        return remembered.read_text()
    except OSError:
        pass
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if settled([[str(path), st.st_ctime_ns]]):  # an older file cannot hide a same-tick rewrite
        write_atomic(remembered, digest)
    return digest


def probe_kvm(kernel: Path, timeout: float = PROBE_TIMEOUT_S, use_cache: bool = True) -> tuple[bool, str]:
    """Whether KVM boots ``kernel`` to its init here, and why not.

    The probe boots the kernel with an init that exits at once (``unik_probe=1``).  The
    answer is cached per QEMU, kernel and host boot, so only the first run pays for it.
    """
    why = kvm_usable()
    if why:
        return False, why
    qemu = qemu_binary()
    directory = cache_dir() / "virtio"
    h = hashlib.sha256(f"{qemu}\0{os.stat(qemu).st_mtime_ns}\0{_boot_id()}\0".encode())
    h.update(_kernel_digest(kernel, directory).encode())
    cached = directory / f"kvm-probe-{h.hexdigest()[:24]}.json"
    if use_cache and cached.is_file():
        data = json.loads(cached.read_text())
        return bool(data["ok"]), str(data["why"])
    spec = Boot(kernel, _probe_initramfs(directory), "microvm", "kvm", mem="128M",
                cmdline=(*BASE_CMDLINE, "unik_probe=1"))
    try:
        outcome = boot(spec, boot_timeout=timeout, console=None, time_limit=timeout)
        ok = outcome.status == PROBE_STATUS
        if outcome.returncode < 0:
            why = f"QEMU died of signal {-outcome.returncode} booting a guest with KVM"
        else:
            why = "" if ok else f"the probe guest exited with status {outcome.status}"
    except RunError as exc:
        ok, why = False, str(exc).split(";")[0]
    write_atomic(cached, json.dumps({"ok": ok, "why": why}))
    return ok, why


def choose_accel(accel: str, kernel: Path, progress: Progress) -> str:
    """``kvm`` or ``tcg`` for ``--accel auto|kvm|tcg``, saying why when falling back."""
    if accel == "tcg":
        return "tcg"
    if accel == "kvm":
        why = kvm_usable()
        if why:
            raise RunError(f"--accel kvm: {why}")
        return "kvm"
    ok, why = probe_kvm(kernel)
    if ok:
        progress.info("accelerator: KVM")
        return "kvm"
    progress.warn(f"KVM does not boot guests here ({why}): using TCG emulation, which is slower")
    return "tcg"


def started_details(pid: int, accel: str) -> dict[str, object]:
    """What a runner reports of a QEMU it started (``RunContext.started``)."""
    from unik.instances import process_start

    return {"qemu_pid": pid, "qemu_pid_start": process_start(pid), "accel": accel}


class Stopper:
    """SIGINT and SIGTERM received while a guest runs.

    The first asks the guest to stop (:func:`boot`'s ``stop``); another one a second or
    more later (a repeat of the same keypress arrives at once) forces it (``force``).
    """

    def __init__(self) -> None:
        self.signals: list[tuple[int, float]] = []
        self._previous: dict[int, object] = {}

    def handler(self, signum: int, _frame: object) -> None:
        """The signal handler."""
        self.signals.append((signum, time.monotonic()))

    def requested(self) -> int | None:
        """The first signal received, if any."""
        return self.signals[0][0] if self.signals else None

    def forced(self) -> bool:
        """Whether a signal came a second or more after the first."""
        return any(t - self.signals[0][1] >= 1.0 for _, t in self.signals[1:])

    def __enter__(self) -> Stopper:
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self.handler)
        except ValueError:  # not the main thread
            self._previous = {}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, old in self._previous.items():
            signal.signal(signum, old)  # type: ignore[arg-type]


def signal_stopper() -> tuple[Callable[[], int | None], Callable[[], None]]:
    """A ``stop`` callable reporting SIGINT/SIGTERM received, and a function restoring handlers."""
    stopper = Stopper().__enter__()
    return stopper.requested, lambda: stopper.__exit__()
