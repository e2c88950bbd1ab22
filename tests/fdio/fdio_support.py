"""What unik-lib-fdio's suites share: a bounded ``run``, and each data path's C and pure twins as a fixture."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable
from types import ModuleType
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 20) -> T:
    """Run ``coro`` on a fresh event loop, bounded to ``timeout`` seconds."""
    async def main() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


def backend_fixture(device: ModuleType, c_name: str, pure_name: str) -> Any:
    """The fixture ``backend``: the C module ``c_name``, then its pure twin ``pure_name``, each
    also installed as ``device.backend``, the one the device's ``connect`` uses."""
    @pytest.fixture(params=["c", "pure"], name="backend")
    def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
        module = importlib.import_module(c_name if request.param == "c" else pure_name)
        monkeypatch.setattr(device, "backend", module)
        return module
    return backend
