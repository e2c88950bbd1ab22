"""Choosing between a C accelerator and its pure-Python twin.

Every C module in unik has a pure-Python twin with the same functions.  Setting
``UNIK_PURE=1`` selects the twins everywhere (the tests run both ways); otherwise the
C module is used when it was built, and the twin when it was not.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def pure() -> bool:
    """Whether ``UNIK_PURE`` asks for the pure-Python twins."""
    return os.environ.get("UNIK_PURE", "") not in ("", "0", "false", "no")


def load(c_module: str, pure_module: str) -> ModuleType:
    """Import ``c_module``, or ``pure_module`` when ``UNIK_PURE`` is set or C is missing."""
    if not pure():
        try:
            return importlib.import_module(c_module)
        except ImportError:
            pass
    return importlib.import_module(pure_module)
