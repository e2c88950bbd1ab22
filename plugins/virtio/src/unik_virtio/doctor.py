"""``unik doctor -t virtio``: what building and booting VM images needs from this host.

Required: QEMU, and what the default kernel provider uses to fetch Debian's kernel
(``apt-get download``, ``dpkg-deb``), and the guest's init (packaged, or a C compiler with
a static libc to build it).  Optional: KVM (else TCG emulation, slower), ``zstd`` (else a
gzip initramfs), QEMU's user network (``--net DEVICE=user``), and for ``--net DEVICE=TAP``
the TUN device and CAP_NET_ADMIN.  Whether KVM really boots a guest is answered by the
probe ``unik run`` uses (:func:`unik_vmimage.qemu.probe_kvm`), on a kernel already fetched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from unik.cache import cache_dir
from unik.doctor import command, tap_privilege, tun_device
from unik.errors import RunError
from unik.target import Check
from unik_vmimage import qemu

KVM_FIX = ("load the KVM module (modprobe kvm_intel or kvm_amd), enable virtualisation in the firmware, "
           "add this user to group kvm, or give the container the device (docker run --device /dev/kvm)")


def _qemu() -> tuple[Check, str | None]:
    wanted = os.environ.get("UNIK_QEMU", qemu.QEMU)
    found = shutil.which(wanted)
    name = f"{wanted} (boots the images{'; from UNIK_QEMU' if 'UNIK_QEMU' in os.environ else ''})"
    return Check(name, found is not None, found or "not found",
                 fix="apt-get install qemu-system-x86 (or set UNIK_QEMU to a QEMU binary)"), found


def cached_kernel() -> Path | None:
    """The newest Debian kernel the default provider has already fetched, if any."""
    kernels = sorted((cache_dir() / "kernels" / "debian").glob("*/kernel.json"))
    return kernels[-1].parent / "vmlinuz" if kernels else None


def _init() -> Check:
    from unik_vmimage import initbin

    name = "the guest's init (unik-init, a static executable)"
    if initbin.BINARY.is_file():
        return Check(name, True, f"packaged: {initbin.BINARY}")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    return Check(name, cc is not None, f"compiled on first use with {cc}" if cc else "not packaged, and no C compiler",
                 fix="apt-get install gcc libc6-dev (it is linked statically), or install unik-lib-vmimage's wheel")


def kvm_check(qemu_path: str | None) -> Check:
    """Whether KVM boots a guest here: the device first, then the run-time probe on a fetched kernel."""
    name = "KVM (else TCG emulation: slower to boot and to run)"
    why = qemu.kvm_usable()
    if why:
        return Check(name, False, f"{why}: TCG will be used", fix=KVM_FIX, required=False)
    kernel = cached_kernel()
    if qemu_path is None or kernel is None or not kernel.is_file():
        missing = "QEMU is missing" if qemu_path is None else "no kernel fetched yet (`unik build -t virtio` does)"
        return Check(name, True, f"/dev/kvm is usable; whether it boots a guest is probed at the first run "
                                 f"({missing})", required=False)
    try:
        ok, why = qemu.probe_kvm(kernel)
    except (RunError, OSError) as exc:
        ok, why = False, str(exc)
    if ok:
        return Check(name, True, f"a guest booted with KVM ({kernel.parent.name})", required=False)
    return Check(name, False, f"/dev/kvm is there but a guest did not boot with it ({why}): TCG will be used",
                 fix="nothing needed (TCG works); for KVM, a VM host must allow nested virtualisation "
                     "(kvm_intel nested=1 on the outer host)", required=False)


def user_network(qemu_path: str | None) -> Check:
    """Whether QEMU was built with its user network (slirp), for ``--net DEVICE=user``."""
    name = "QEMU's user network (--net DEVICE=user: no root, no TAP)"
    if qemu_path is None:
        return Check(name, False, "QEMU is missing", fix="apt-get install qemu-system-x86", required=False)
    try:
        proc = subprocess.run([qemu_path, "-netdev", "help"], capture_output=True, text=True, timeout=20)
        backends = proc.stdout.split()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, False, f"{qemu_path} -netdev help failed: {exc}", required=False)
    return Check(name, "user" in backends, "available" if "user" in backends else "this QEMU has no slirp",
                 fix="install a QEMU built with libslirp (Debian's qemu-system-x86 is)", required=False)


def doctor_checks(root: Path = Path("/")) -> list[Check]:
    """The virtio target's host checks (``root``: where /proc, /dev and /sys are, for tests)."""
    qemu_check, qemu_path = _qemu()
    checks = [
        qemu_check,
        command("apt-get", "the debian kernel provider fetches the guest kernel", "apt",
                fix="apt-get install apt, or build with --kernel PATH"),
        command("dpkg-deb", "unpacks the fetched kernel package", "dpkg",
                fix="apt-get install dpkg, or build with --kernel PATH"),
        _init(),
        kvm_check(qemu_path),
        command("zstd", "the initramfs compression; without it gzip, slower to unpack", "zstd", required=False),
        user_network(qemu_path),
        tun_device("--net DEVICE=TAP", root),
        tap_privilege("QEMU opening TAP devices for --net DEVICE=TAP|auto", root),
    ]
    return checks
