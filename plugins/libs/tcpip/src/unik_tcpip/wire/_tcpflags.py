"""The TCP control bits as an :class:`enum.IntFlag` (served on first use by :mod:`unik_tcpip.wire.tcp`)."""

from __future__ import annotations

import enum


class TcpFlags(enum.IntFlag):
    """The control bits."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80
