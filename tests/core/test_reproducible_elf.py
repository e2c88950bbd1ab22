"""unik.reproducible: ELF files made independent of where they were compiled, and SOURCE_DATE_EPOCH.

A shared object compiled with debugging data in two directories (as a C extension is in
two checkouts) differs in that data and in the build ID the linker derived from it;
normalised, the two are the same bytes, with a build ID that is a digest of them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from unik.errors import BuildError
from unik.reproducible import build_id_span, normalised_elf, source_date_epoch, with_content_build_id

SOURCE = """\
#include <stdio.h>
int unik_answer(int x) { return x * 2 + (int)sizeof(__FILE__); }
void unik_hello(void) { puts("hello"); }
"""


def _compile(where: Path) -> Path:
    """``where/src/answer.c`` compiled there (cwd ``where``, -g) into ``where/answer.so``, as setuptools would."""
    (where / "src").mkdir(parents=True)
    (where / "src" / "answer.c").write_text(SOURCE)
    out = where / "answer.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-g", "-O2", "-Wl,--build-id=sha1", "-o", str(out), "src/answer.c"],
                   cwd=where, check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture
def two_builds(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("cc") is None or shutil.which("strip") is None:
        pytest.skip("needs a C compiler and strip (binutils)")
    return _compile(tmp_path / "checkout-one"), _compile(tmp_path / "elsewhere" / "checkout-two")


def test_builds_in_two_directories_differ_until_normalised(two_builds: tuple[Path, Path]) -> None:
    one, two = two_builds
    raw_one, raw_two = one.read_bytes(), two.read_bytes()
    assert raw_one != raw_two and b"checkout-one" in raw_one  # the debugging data names the directory
    span_one, span_two = build_id_span(raw_one), build_id_span(raw_two)
    assert span_one is not None and span_two is not None and span_one[1] == 20
    assert raw_one[span_one[0]:span_one[0] + 20] != raw_two[span_two[0]:span_two[0] + 20]
    norm_one, norm_two = normalised_elf(one), normalised_elf(two)
    assert norm_one == norm_two
    assert b"checkout-one" not in norm_one and b".debug_info" not in norm_one
    assert len(norm_one) < len(raw_one)
    span = build_id_span(norm_one)
    assert span is not None and span[1] == 20
    assert with_content_build_id(norm_one) == norm_one, "the build ID is the digest of the rest: a fixed point"
    readelf = shutil.which("readelf")
    if readelf:  # binutils reads the new build ID where the linker's was
        stored = one.with_name("normalised.so")
        stored.write_bytes(norm_one)
        notes = subprocess.run([readelf, "-n", str(stored)], capture_output=True, text=True, timeout=30)
        start, size = span
        assert f"Build ID: {norm_one[start:start + size].hex()}" in notes.stdout


def test_a_normalised_library_still_loads(two_builds: tuple[Path, Path], tmp_path: Path) -> None:
    import ctypes

    lib = tmp_path / "loaded.so"
    lib.write_bytes(normalised_elf(two_builds[0]))
    assert ctypes.CDLL(str(lib)).unik_answer(20) == 40 + len("src/answer.c") + 1


def test_what_is_not_an_elf_file_is_left_alone(tmp_path: Path) -> None:
    text = tmp_path / "not.so"
    text.write_bytes(b"#!/bin/sh\necho not ELF\n")
    assert normalised_elf(text) == text.read_bytes()
    assert with_content_build_id(b"\x7fELF" + bytes(60)) == b"\x7fELF" + bytes(60)  # no section holds a note


def test_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert source_date_epoch() == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert source_date_epoch() == 1700000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BuildError, match=r"SOURCE_DATE_EPOCH='yesterday' is not a number of seconds since 1970"):
        source_date_epoch()
