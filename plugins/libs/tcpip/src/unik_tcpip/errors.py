"""Errors of the TCP/IP stack."""

from __future__ import annotations

from unik.errors import DeviceError


class Malformed(DeviceError):
    """A received packet is malformed; the interface counts it under ``reason`` and drops it.

    ``reason`` is a short dotted name such as ``"ipv4.bad_checksum"``: the key of the
    drop counter in :attr:`unik_tcpip.stack.TcpipStack.stats`.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
