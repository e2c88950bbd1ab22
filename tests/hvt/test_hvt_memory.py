"""The guest's memory as the monitor maps it: W^X by page tables, a null page, a stack guard page."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hvt_support import GUEST_DIR, needs_kvm, run, runtime_guest
from unik_solo5.hvtfs import link

GUESTS = {
    "overflow": """
        static int depth(int n) { volatile char pad[1024]; pad[0] = (char)n; return depth(n + 1) + pad[0]; }
        void _start(void) { depth(0); }
    """,
    "write_text": "void _start(void) { *(volatile char *)_start = 0; }",
    "run_data": """
        static unsigned char code[16] = {0xc3}; /* ret, in .data */
        void _start(void) { ((void (*)(void))code)(); }
    """,
    "run_stack": """
        void _start(void) { volatile unsigned char code[16] = {0xc3}; ((void (*)(void))code)(); }
    """,
    "null": "void _start(void) { *(volatile int *)8 = 1; }",
    "page_tables": "void _start(void) { *(volatile long *)0x2000 = 0; }",
    "rodata": """
        static const char text[] = "constant";
        void _start(void) { *(volatile char *)text = 'C'; }
    """,
}


@pytest.mark.parametrize(("guest", "message"), [
    # --mem 64: the stack is the top 8 MiB, the guard page the one below (0x37ff000)
    ("overflow", r"the guest's stack overflowed: cr2 0x37ff[0-9a-f]{3} is in the guard page 0x37ff000 below its "
                 r"8 MiB stack"),
    ("write_text", r"the guest wrote to 0x[0-9a-f]+, in its read-only text \(W\^X\)"),
    ("run_data", r"the guest jumped to 0x[0-9a-f]+, which is not executable \(data, heap or stack: W\^X\)"),
    ("run_stack", r"the guest jumped to 0x3[0-9a-f]{6}, which is not executable"),
    ("null", r"the guest dereferenced a null pointer \(cr2 0x8\)"),
    ("page_tables", r"the guest touched 0x2000, which is not mapped for it \(the monitor's page tables\)"),
    ("rodata", r"the guest wrote to 0x[0-9a-f]+, in its read-only data \(W\^X\)"),
])
def test_a_fault_is_named(tmp_path: Path, guest: str, message: str) -> None:
    needs_kvm()
    source = tmp_path / f"{guest}.c"
    source.write_text(GUESTS[guest])
    proc = run("--mem", "64", runtime_guest(tmp_path, source))
    assert proc.returncode == 255
    assert "rip=0x" in proc.stderr and re.search(message, proc.stderr), proc.stderr


def test_freed_memory_comes_back_zeroed(tmp_path: Path) -> None:
    """mmap and brk zero what the guest had before (and only that: fresh memory is the monitor's, zero)."""
    needs_kvm()
    obj = tmp_path / "heapreuse.o"
    subprocess.run(["gcc", "-O2", "-c", str(GUEST_DIR / "heapreuse.c"), "-o", str(obj)], check=True)
    link([obj], None, tmp_path / "heapreuse")
    proc = run("--mem", "64", tmp_path / "heapreuse")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["fresh mmap: zero", "mmap after munmap of dirty memory: zero",
                                        "the break given back dirty and grown again: zero",
                                        "the break grown over memory mmap had dirtied: zero"]


def test_the_heaps_first_pages_are_2_mib_pages(tmp_path: Path) -> None:
    """mmap's first memory (the top of the heap) is not in the 4 KiB-mapped region of the stack's guard page:
    touching 512 of its pages takes a handful of KVM page faults, not one each."""
    needs_kvm()
    obj = tmp_path / "firsttouch.o"
    subprocess.run(["gcc", "-O2", "-c", str(GUEST_DIR / "firsttouch.c"), "-o", str(obj)], check=True)
    link([obj], None, tmp_path / "firsttouch")
    proc = run("--mem", "64", "--profile", tmp_path / "firsttouch")
    assert (proc.returncode, proc.stdout) == (0, "touched 512 pages\n"), proc.stderr
    faults = re.search(r"KVM's counts for the vCPU:.* pf_fixed (\d+)", proc.stderr)
    if not faults:
        pytest.skip("this KVM does not give its statistics (KVM_GET_STATS_FD)")
    assert int(faults.group(1)) < 100, proc.stderr
