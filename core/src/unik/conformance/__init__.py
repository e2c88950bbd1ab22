"""Conformance suites: the tests every provider of a device protocol must pass.

A provider of ``unik.devices.Block`` (a third party's RAM disk, or one of ours) is
tested by subclassing the suite and saying how to connect one::

    from unik.testing import BlockConformance

    class TestRamDisk(BlockConformance):
        async def connect(self) -> Block:
            return await RamDisk.connect(sectors=64)

pytest collects the subclass (its name starts with ``Test``) and runs every check of the
suite against it: the protocol's methods, their results and their typed errors
(:class:`~unik.errors.OutOfRange`, :class:`~unik.errors.ReadOnlyDevice`,
:class:`~unik.errors.DeviceClosed`...).  Each check runs in its own event loop
(``asyncio.run``), so no pytest plugin for asyncio is needed.  Every provider in this
repository passes them (tests/conformance).
"""

from __future__ import annotations

from .base import DeviceConformance
from .block import BlockConformance
from .clocks import MonotonicClockConformance, SleepConformance, WallClockConformance
from .console import ConsoleConformance
from .fs import FileSystemConformance
from .kv import KVROConformance, KVRWConformance
from .network import NetworkConformance, NetworkPeer
from .random import EntropySourceConformance, RandomConformance
from .stack import StackConformance, StackPair
from .tls import TLSConformance, TLSPair

__all__ = [
    "BlockConformance", "ConsoleConformance", "DeviceConformance", "EntropySourceConformance",
    "FileSystemConformance", "KVROConformance", "KVRWConformance", "MonotonicClockConformance",
    "NetworkConformance", "NetworkPeer", "RandomConformance", "SleepConformance", "StackConformance",
    "StackPair", "TLSConformance", "TLSPair", "WallClockConformance",
]
