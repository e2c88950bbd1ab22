"""A complete fake target plugin for the core's tests: devices, a library, a target.

Its implementations are real (in-memory) so that generated ``main.py`` files run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from unik.devices import IPv4Config
from unik.hookspecs import hookimpl
from unik.keys import Key, KeyValues
from unik.plan import Plan
from unik.provider import Configured, KeyRef, Need, Option, Provider, Request
from unik.target import Artifact, BuildContext, RunContext, Target

UNIK_API = ">=1.0,<2"
HERE = Path(__file__).parent
LOG: list[str] = []  # connect/disconnect order, for in-process runs

NET = Key("net", "network binding", default="none", per_device=True)
IPV4 = Key("ipv4", "address/prefix")


class _Dev:
    def __init__(self, name: str, **kw: object) -> None:
        self.name, self.kw = name, kw
        LOG.append(f"connect {name}")

    async def disconnect(self) -> None:
        LOG.append(f"disconnect {self.name}")


class FakeConsole(_Dev):
    @classmethod
    async def connect(cls) -> FakeConsole:
        return cls("console")

    def log(self, message: str) -> None:
        print(message, flush=True)

    async def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)


class FakeClock(_Dev):
    @classmethod
    async def connect(cls) -> FakeClock:
        return cls("monotonic_clock")

    def now_ns(self) -> int:
        return time.monotonic_ns()


class FakeRandom(_Dev):
    @classmethod
    async def connect(cls) -> FakeRandom:
        return cls("random")

    def generate(self, n: int) -> bytes:
        return os.urandom(n)


class FakeNetwork(_Dev):
    @classmethod
    async def connect(cls, name: str, ifname: str | None = None) -> FakeNetwork:
        return cls(name, ifname=ifname)


class FakeStack(_Dev):
    def __init__(self, network: FakeNetwork, ipv4: str | None) -> None:
        super().__init__("stack", network=network.kw["ifname"])
        self.network = network
        address, _, prefix = (ipv4 or "0.0.0.0/0").partition("/")
        self.ipv4 = IPv4Config(address, int(prefix or 0))

    @classmethod
    async def connect(
        cls, network: FakeNetwork, clock: FakeClock, random: FakeRandom, ipv4: str | None = None
    ) -> FakeStack:
        return cls(network, ipv4)


class FakeHostStack(_Dev):
    """A stack with no network device (like the unix socket stack)."""

    def __init__(self) -> None:
        super().__init__("stack")
        self.network = _Dev("host", ifname="host")
        self.ipv4 = IPv4Config("127.0.0.1", 8)

    @classmethod
    async def connect(cls) -> FakeHostStack:
        return cls()


class _Fake(Provider):
    targets: ClassVar[frozenset[str] | None] = frozenset({"fake"})


class ConsoleP(_Fake):
    PLUGIN_NAME = "fake.console"
    kind = "console"
    implementation = "fake_plugin:FakeConsole"


class ClockP(_Fake):
    PLUGIN_NAME = "fake.clock"
    kind = "monotonic_clock"
    implementation = "fake_plugin:FakeClock"


class RandomP(_Fake):
    PLUGIN_NAME = "fake.random"
    kind = "random"
    implementation = "fake_plugin:FakeRandom"


class NetworkP(_Fake):
    PLUGIN_NAME = "fake.network"
    kind = "network"
    implementation = "fake_plugin:FakeNetwork"
    keys = (NET,)
    options = (Option("mtu", "maximum frame size", "int", default=1500),)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        opts = cls.table_options(request)
        opts.pop("mtu")
        opts["name"] = request.device
        return Configured(options=opts, key_options={"ifname": KeyRef("net", per_device=True)})


class StackP(Provider):
    """A library stack: serves every target, needs a network, a clock and randomness."""

    PLUGIN_NAME = "fakelib.stack"
    kind = "stack"
    implementation = "fake_plugin:FakeStack"
    needs: ClassVar = {
        "network": Need("network", "service"),
        "clock": Need("monotonic_clock"),
        "random": Need("random"),
    }
    keys = (IPV4,)

    @classmethod
    def configure(cls, request: Request) -> Configured:
        return Configured(key_options={"ipv4": KeyRef("ipv4")})


class HostStackP(_Fake):
    """Outranks the library stack when ``--net=host``."""

    PLUGIN_NAME = "fake.host-stack"
    kind = "stack"
    implementation = "fake_plugin:FakeHostStack"
    priority = 10
    keys = (NET,)

    @classmethod
    def applies(cls, request: Request) -> bool:
        return request.keys.raw("net") == "host"


#: A key built into the artifact: a different value at run time builds for that run.
FLAVOUR = Key("flavour", "what the artifact is built as", default="plain", stage="configure")


class FakeTarget(Target):
    PLUGIN_NAME = "fake"
    description = "an in-memory target for tests"
    keys = (NET, FLAVOUR)
    run_keys = (Key("mem", "memory size", default="64M"),)

    def emit(self, plan: Plan, ctx: BuildContext) -> Artifact:
        out = ctx.artifact_dir(plan)
        (out / "main.py").write_text((ctx.build_dir / "main.py").read_text())
        flavour = plan.keys.raw("flavour") if "flavour" in plan.keys.keys else FLAVOUR.default
        return Artifact("fake", out, "main.py", {"devices": len(plan.nodes), "flavour": flavour})

    def run(self, artifact: Artifact, keys: KeyValues, ctx: RunContext) -> int:
        plan = Plan.loads((ctx.root / "_build" / "fake" / "plan.json").read_text())
        path = os.pathsep.join([str(HERE), *plan.app.source_dirs, os.environ.get("PYTHONPATH", "")])
        print(f"mem={ctx.options.get('mem')} flavour={artifact.manifest.get('flavour')}", flush=True)
        cmd = [sys.executable, str(artifact.path), *keys.as_args(), *ctx.extra_args]
        return subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=path)).returncode


PROVIDERS: Sequence[type[Provider]] = (ConsoleP, ClockP, RandomP, NetworkP, HostStackP)


@hookimpl
def unik_register_targets() -> Sequence[type[Target]]:
    return [FakeTarget]


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    return [*PROVIDERS, StackP]
