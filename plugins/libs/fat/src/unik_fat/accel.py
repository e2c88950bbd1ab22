"""The FAT accelerator in use: C (``_accel``) or its pure twin (``UNIK_PURE=1``)."""

from __future__ import annotations

from types import ModuleType

from unik import accel as _choose

#: ``unik_fat._accel`` when built and not disabled, else ``unik_fat._accel_py``.
impl: ModuleType = _choose.load("unik_fat._accel", "unik_fat._accel_py")
