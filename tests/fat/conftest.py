from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from unik import accel as unik_accel
from unik_fat import accel as fat_accel


def _c_module() -> object | None:
    try:
        import unik_fat._accel as c_accel
    except ImportError:
        return None
    module: object = c_accel
    return module


@pytest.fixture(params=["c", "pure"])
def accel(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test with the C accelerator and with its pure-Python twin (switched by unik.accel)."""
    if request.param == "c" and (_c_module() is None or unik_accel.pure()):
        pytest.skip("C accelerator not built (or UNIK_PURE set)")
    fat_accel.TWIN.select(request.param == "pure")
    try:
        yield request.param
    finally:
        fat_accel.TWIN.select(None)
