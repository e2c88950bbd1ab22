"""TCP (RFC 9293) with RFC 6298 timers, NewReno/CUBIC, RFC 7323 options and SACK.

A segment's path, from the interface to the application:

* :meth:`layer.TcpLayer.frame_input` takes what the frame parser found; an established
  connection's next in-order segment is processed there by header prediction
  (:mod:`.predict`: ``_predict.c`` or its pure twin), with the result ``segment_arrives``
  would give; every other segment is parsed and goes on:
* :meth:`layer.TcpLayer.segment_input` finds the connection by its four-tuple (or runs
  CLOSED and LISTEN processing, SYN cookies included);
* :meth:`transport.TcpConnection.segment_arrives` feeds it to the connection's state
  machine, :meth:`connection.Connection.segment_arrives` (RFC 9293 3.10.7, step by step),
  which appends replies to its outbox, in-order data to its receive queue and events;
* :meth:`transport.TcpConnection._run` sends the replies, arms the timer and hands the
  data to the :class:`asyncio.Protocol` (a ``StreamReader`` for :meth:`layer.TcpLayer.connect`).

The state machine's pieces each have a module: :mod:`.seq` (sequence arithmetic),
:mod:`.state`, :mod:`.config`, :mod:`.rtt` (RFC 6298), :mod:`.timer`, :mod:`.buffers`,
:mod:`.assembler` (out-of-order data, SACK blocks), :mod:`.sack` (the sender's
scoreboard); congestion control is :mod:`unik_tcpip.cc`.
"""

from __future__ import annotations

from .config import TcpConfig, TcpStats
from .connection import Connection, Event, Path
from .layer import EPHEMERAL, TcpLayer, TcpListener, TcpServer
from .seq import MASK, seq_diff, seq_le, seq_lt
from .state import SYNCHRONIZED, State
from .transport import TcpConnection

__all__ = [
    "EPHEMERAL", "MASK", "SYNCHRONIZED", "Connection", "Event", "Path", "State", "TcpConfig", "TcpConnection",
    "TcpLayer", "TcpListener", "TcpServer", "TcpStats", "seq_diff", "seq_le", "seq_lt",
]
