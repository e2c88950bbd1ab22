"""Fixtures for the wheel tests."""

from __future__ import annotations

import pytest
from wheel_support import Wheelhouse, cached_wheelhouse


@pytest.fixture(scope="session")
def wheelhouse() -> Wheelhouse:
    """The core's and the unix plugin's wheels plus their dependencies (cached under build/)."""
    return cached_wheelhouse()
