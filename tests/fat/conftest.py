from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import unik_fat._accel_py as pure_accel
import unik_fat.fs as fat_fs


def _c_module() -> object | None:
    try:
        import unik_fat._accel as c_accel
    except ImportError:
        return None
    return c_accel


@pytest.fixture(params=["c", "pure"])
def accel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with the C accelerator and with its pure-Python twin."""
    if request.param == "c":
        mod = _c_module()
        if mod is None or os.environ.get("UNIK_PURE"):
            pytest.skip("C accelerator not built (or UNIK_PURE set)")
        monkeypatch.setattr(fat_fs, "accel", mod)
    else:
        monkeypatch.setattr(fat_fs, "accel", pure_accel)
    yield request.param
