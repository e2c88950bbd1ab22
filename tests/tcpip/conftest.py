from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kernel_support import Namespace, Namespace6, kernel_namespace, kernel_namespace6


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A fresh namespace for the kernel's side of a TAP (see kernel_support)."""
    with kernel_namespace("unik-tcpip") as ns:
        yield ns


@pytest.fixture(params=["ipv4", "ipv6"])
def either_ns(request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """:func:`netns` and :func:`netns6` in turn: a test of both families (``kernel_support.stack_on``)."""
    with kernel_namespace("unik-tcpip") if request.param == "ipv4" else kernel_namespace6("unik-ip6") as ns:
        yield ns


@pytest.fixture
def netns6() -> Iterator[Namespace6]:
    """A fresh namespace with IPv6 on, for the kernel's side of a TAP (see kernel_support)."""
    with kernel_namespace6("unik-ip6") as ns:
        yield ns
