"""A cold boot's end as CPython's: main.py's exit status, tracebacks, atexit and the streams, without finalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hvt_support import build_app, needs_build_tools, needs_kvm, run, unik

#: The mode is the guest's last argument, taken before unik's parser reads the others.
HEAD = """
import atexit
import gc
import sys

GC_AT_IMPORT = gc.isenabled()

MODE = sys.argv.pop() if len(sys.argv) > 1 and sys.argv[-1].startswith("mode=") else "mode=ok"
if MODE == "mode=import":
    import cold_no_such_module  # noqa: F401
"""
BODY = """
if MODE == "mode=gc":
    console.log(f"at import: {GC_AT_IMPORT}; at start: {gc.isenabled()}, {gc.get_freeze_count() > 10000} frozen")
    return 0
if MODE == "mode=raise":
    raise RuntimeError("boom at start")
if MODE == "mode=atexit":
    atexit.register(lambda: print("atexit ran"))
    sys.stdout.write("no newline")  # flushed on the way out
    return 0
console.log("version 1")
return 3
"""


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    needs_kvm()
    needs_build_tools()
    return build_app(tmp_path_factory.mktemp("cold"), "cold", BODY, head=HEAD)


def _elf(app: Path) -> Path:
    return app / "dist" / "cold-hvt" / "cold.hvt"


def test_the_status_passes_through(cold: Path) -> None:
    proc = run(_elf(cold))
    assert (proc.returncode, proc.stdout) == (3, "version 1\n"), proc.stderr


def test_an_import_error_shows_its_traceback(cold: Path) -> None:
    proc = run(_elf(cold), "mode=import")
    assert proc.returncode == 1
    assert "Traceback (most recent call last):" in proc.stderr
    assert "ModuleNotFoundError: No module named 'cold_no_such_module'" in proc.stderr
    assert "import cold_no_such_module" in proc.stderr  # the source line, from the archive


def test_an_exception_at_start_shows_its_traceback(cold: Path) -> None:
    proc = run(_elf(cold), "mode=raise")
    assert proc.returncode == 1
    assert "RuntimeError: boom at start" in proc.stderr and 'raise RuntimeError("boom at start")' in proc.stderr


def test_atexit_functions_run_and_the_streams_are_flushed(cold: Path) -> None:
    proc = run(_elf(cold), "mode=atexit")
    assert (proc.returncode, proc.stdout) == (0, "no newline" + "atexit ran\n"), proc.stderr


def test_a_usage_error_exits_2_with_its_message(cold: Path) -> None:
    proc = run(_elf(cold), "--bogus")
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr, proc.stderr


def test_an_application_edited_after_a_build_is_not_served_stale(cold: Path) -> None:
    """unik build compiles the byte code again (unchecked-hash pycs), cold and restored boots see the edit."""
    source = cold / "src" / "cold" / "__init__.py"
    source.write_text(source.read_text().replace('"version 1"', '"version 2"'))
    try:
        unik(cold, "-q", "build")
        assert run(_elf(cold)).stdout == "version 2\n"
        assert unik(cold, "run", "-t", "hvt", check=False).stdout == "version 2\n"
    finally:
        source.write_text(source.read_text().replace('"version 2"', '"version 1"'))
        unik(cold, "-q", "build")


def test_the_collector_is_off_while_starting_and_on_with_startup_frozen_after(cold: Path) -> None:
    proc = run(_elf(cold), "mode=gc")
    assert (proc.returncode, proc.stdout) == (0, "at import: False; at start: True, True frozen\n"), proc.stderr
