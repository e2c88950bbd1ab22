"""The accelerator in use: C (``_sources``) or its pure twin (``UNIK_PURE=1``)."""

from __future__ import annotations

from types import ModuleType

from unik import accel as _choose

#: ``unik_entropy._sources`` when built and not disabled, else ``unik_entropy._sources_py``.
impl: ModuleType = _choose.load("unik_entropy._sources", "unik_entropy._sources_py")
