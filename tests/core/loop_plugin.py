"""A stack provider that brings its own event loop, for tests/core/test_event_loop_main.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import fake_plugin
from unik.hookspecs import hookimpl
from unik.provider import Provider

UNIK_API = ">=1.0,<2"


class FakeLoop(asyncio.SelectorEventLoop):
    """What unik_tcpip.aio.UnikEventLoop is to unik's stack: the generated main.py runs on it."""

    @classmethod
    def attach_running(cls, device: fake_plugin.FakeStack) -> None:
        running = asyncio.get_running_loop()
        fake_plugin.LOG.append(f"attach {device.name} to {type(running).__name__}")


class LoopStackP(fake_plugin.StackP):
    PLUGIN_NAME = "looplib.stack"
    event_loop = "loop_plugin:FakeLoop"
    priority = 5


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    return [LoopStackP]
