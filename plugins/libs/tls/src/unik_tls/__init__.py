"""unik-lib-tls: TLS 1.2 and 1.3 over any unik :class:`~unik.devices.Flow`, the ``TLS`` device.

OpenSSL (the standard library's :mod:`ssl`, through :class:`ssl.MemoryBIO` and
:class:`ssl.SSLObject`) does the cryptography; this library layers it over flows,
configures it safely and gives back flows that asyncio-streams handlers use unchanged.
"""

from __future__ import annotations

__version__ = "0.1.0"
