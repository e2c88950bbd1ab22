"""The runtime of generated mains: exit statuses, signals, device lifecycle, keys."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from unik import runtime
from unik.keys import Key, KeyValues

MAIN = """
import asyncio, sys
from unik import lifecycle, runtime
from unik.keys import Key, KeyValues

for event in lifecycle.EVENTS:
    lifecycle.subscribe(event, lambda event=event: print("event", event, flush=True))

class Dev:
    @classmethod
    async def connect(cls, name):
        print("connect", name, flush=True)
        d = cls(); d.name = name; return d
    async def disconnect(self):
        print("disconnect", self.name, flush=True)

KEYS = KeyValues([Key("mode", "what to do", default="ok")])

async def main(keys):
    async with runtime.Devices() as devices:
        await devices.connect("a", Dev, name="a")
        await devices.connect("b", Dev, name="b")
        devices.started()
        mode = keys.get("mode")
        if mode == "ok":
            return None
        if mode == "seven":
            return 7
        if mode == "raise":
            raise ValueError("boom")
        if mode == "exit":
            sys.exit(4)
        if mode == "wait":
            print("waiting", flush=True)
            await asyncio.sleep(60)

if __name__ == "__main__":
    runtime.main(main, KEYS, __file__)
"""


@pytest.fixture
def main_py(tmp_path: Path) -> Path:
    path = tmp_path / "main.py"
    path.write_text(textwrap.dedent(MAIN))
    return path


def run(main_py: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(main_py), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("mode", "status"), [("ok", 0), ("seven", 7), ("raise", 1), ("exit", 4)])
def test_exit_status_and_reverse_disconnect(main_py: Path, mode: str, status: int) -> None:
    out = run(main_py, f"--mode={mode}")
    assert out.returncode == status
    assert out.stdout.splitlines()[-5:] == ["connect a", "connect b", "event started", "disconnect b",
                                            "disconnect a"]
    if mode == "raise":
        assert "ValueError: boom" in out.stderr


def test_bad_key_value_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "main.py"
    path.write_text(textwrap.dedent(MAIN).replace('Key("mode", "what to do", default="ok")',
                                                  'Key("mode", "what to do", default="1", type="int")'))
    out = run(path, "--mode=many")
    assert out.returncode == 2
    assert "--mode: 'many' is not a valid int" in out.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_cancels_and_disconnects(main_py: Path, signum: int) -> None:
    proc = subprocess.Popen([sys.executable, str(main_py), "--mode=wait"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while proc.stdout.readline() != "waiting\n":
        assert time.monotonic() < deadline
    proc.send_signal(signum)
    proc.send_signal(signum)  # a duplicate (terminal + forwarded) is ignored
    rest = proc.stdout.read()
    assert proc.wait(timeout=20) == 128 + signum
    # the life cycle's shutdown request first, once, then the devices in reverse connect order
    assert rest.splitlines() == ["event shutdown_requested", "disconnect b", "disconnect a"]


def test_help_lists_keys_with_configured_values(main_py: Path) -> None:
    out = run(main_py, "--help")
    assert out.returncode == 0
    assert "--mode STR  what to do (configured: ok)" in out.stdout


def test_artifact_path_follows_the_root(tmp_path: Path) -> None:
    runtime.set_root(tmp_path)
    assert runtime.artifact_path("assets/x") == str(tmp_path / "assets" / "x")


def test_keys_round_trip_and_bindings() -> None:
    keys = KeyValues([Key("net", "n", default="socket", per_device=True), Key("port", "p", type="int")])
    keys = keys.with_args({"net": ["service=tap0", "uplink=tap1"], "port": ["0x50"]})
    assert keys.get("net") == "socket"
    assert keys.get("net", device="service") == "tap0"
    assert keys.get("port") == 80
    assert KeyValues.from_json(keys.to_json()) == keys
    assert keys.as_args() == ["--net", "service=tap0", "--net", "uplink=tap1", "--port=0x50"]
    flag = KeyValues([Key("verbose", "v", type="bool", default="false")])
    assert flag.get("verbose") is False
    assert flag.with_args({"verbose": ["yes"]}).get("verbose") is True


def test_bare_bool_flags_and_a_target_dialect() -> None:
    def colon(argv: Sequence[str], keys: Mapping[str, Key]) -> list[str]:  # a target's dialect: --net:DEV=V
        out: list[str] = []
        for arg in argv:
            option, _, binding = arg.partition(":")
            out += [option, binding] if binding else [arg]
        return out

    net = Key("net", "n", per_device=True)
    parsed = runtime.parse_args(
        KeyValues([net, Key("verbose", "v", type="bool", default="false")]),
        ["--net", "service=tap1", "--verbose"], "prog",
    )
    assert parsed.get("net", device="service") == "tap1"
    assert parsed.get("verbose") is True
    parsed = runtime.parse_args(KeyValues([net]), ["--net:service=tap2"], "prog", syntax=colon)
    assert parsed.get("net", device="service") == "tap2"
    from unik.errors import BadKey

    # The core itself carries no target's dialect (a unix .pyz has no solo5 code): refused,
    # naming the spelling this artifact reads (exit 2, as argparse's usage errors).
    with pytest.raises(BadKey, match=r"^--net:service=tap2: this artifact reads --net service=tap2 "):
        runtime.parse_args(KeyValues([net]), ["--net:service=tap2"], "prog")
    with pytest.raises(SystemExit):  # not a per-device key: argparse's own usage error
        runtime.parse_args(KeyValues([net, Key("port", "p")]), ["--port:x=1"], "prog")


def test_lifecycle_events_are_checked_announced_once_and_isolated(capsys: pytest.CaptureFixture[str]) -> None:
    from unik import lifecycle

    lifecycle.reset()
    seen: list[str] = []
    with pytest.raises(ValueError, match="unknown life-cycle event 'stoped'"):
        lifecycle.subscribe("stoped", lambda: None)
    lifecycle.subscribe(lifecycle.BEFORE_SEAL, lambda: 1 / 0)
    lifecycle.subscribe(lifecycle.BEFORE_SEAL, lambda: seen.append("preload"))
    lifecycle.announce(lifecycle.BEFORE_SEAL)
    lifecycle.announce(lifecycle.BEFORE_SEAL)
    assert seen == ["preload"] and lifecycle.announced(lifecycle.BEFORE_SEAL)
    assert "a before_seal subscriber failed" in capsys.readouterr().err
    lifecycle.reset()
    assert not lifecycle.announced(lifecycle.BEFORE_SEAL)


def test_resumed_is_announced_each_time_and_unsubscribes() -> None:
    from unik import lifecycle

    lifecycle.reset()
    seen: list[str] = []

    def renew() -> None:
        seen.append("renew")

    lifecycle.subscribe(lifecycle.RESUMED, renew)
    lifecycle.announce(lifecycle.RESUMED)
    lifecycle.announce(lifecycle.RESUMED)
    assert seen == ["renew", "renew"] and lifecycle.announced(lifecycle.RESUMED)
    lifecycle.unsubscribe(lifecycle.RESUMED, renew)
    lifecycle.announce(lifecycle.RESUMED)
    assert seen == ["renew", "renew"]
    lifecycle.reset()


def test_event_timings_reach_subscribers_without_either_side_importing_the_other() -> None:
    from unik import lifecycle

    stream = lifecycle.timings("test.core.timings")
    assert lifecycle.timings("test.core.timings") is stream
    got: list[tuple[str, bytes]] = []

    def sink(s: lifecycle.Timings, data: bytes) -> None:
        got.append((s.name, data))

    for i in range(16):  # nobody subscribed: nothing is kept
        stream.tick(i)
    assert stream.events == 0 and not got
    lifecycle.subscribe_timings(sink)
    lifecycle.subscribe_timings(sink)  # once per sink
    try:
        for i in range(32):
            stream.tick(i)
    finally:
        lifecycle.unsubscribe_timings(sink)
    assert stream.events == 2 and [n for n, _ in got] == ["test.core.timings"] * 2
    assert all(len(data) == lifecycle.TIMING_BYTES for _, data in got)


REFUSED = """
from unik import runtime
from unik.errors import DeviceUnavailable
from unik.keys import KeyValues

class Port:
    @classmethod
    async def connect(cls):
        raise DeviceUnavailable("cannot listen on 0.0.0.0:80: ports below 1024 need root")

async def main(keys):
    async with runtime.Devices() as devices:
        await devices.connect("stack", Port)

runtime.main(main, KeyValues([]), __file__, [])
"""


@pytest.mark.parametrize("trace", ["", "1"])
def test_a_refused_device_is_one_sentence(tmp_path: Path, trace: str) -> None:
    main = tmp_path / "main.py"
    main.write_text(REFUSED)
    env = {"UNIK_TRACEBACK": trace, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(main)], capture_output=True, text=True, timeout=60,
                          env={**env, "PYTHONPATH": ":".join(sys.path)})
    assert proc.returncode == 1
    last = "error: cannot listen on 0.0.0.0:80: ports below 1024 need root"
    assert proc.stderr.rstrip().endswith(last)
    assert ("Traceback" in proc.stderr) == bool(trace)


def test_an_os_error_while_connecting_becomes_device_unavailable() -> None:
    import asyncio

    from unik.errors import DeviceUnavailable

    class Disk:
        @classmethod
        async def connect(cls) -> None:
            raise PermissionError(13, "Permission denied", "/srv/disk.img")

    async def go() -> None:
        async with runtime.Devices() as devices:
            await devices.connect("storage", Disk)

    with pytest.raises(DeviceUnavailable, match=r"^device 'storage' \(Disk\): Permission denied: /srv/disk.img$"):
        asyncio.run(go())


def test_the_artifact_refuses_a_binding_to_a_device_it_does_not_have() -> None:
    from unik.errors import BadKey

    keys = KeyValues([Key("block", "disk", per_device=True)])
    takers = {"block": ("storage",)}
    assert runtime.parse_args(keys, ["--block", "storage=a.img"], "app", takers).bindings("block") == {
        "storage": "a.img"}
    with pytest.raises(BadKey, match=r"^--block: stroage=\.\.\.: this application has no device 'stroage' "
                                     r"\(did you mean 'storage'\?\) \(devices that take it: storage\)$"):
        runtime.parse_args(keys, ["--block", "stroage=a.img"], "app", takers)


def test_one_switch_for_every_c_and_pure_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unik import accel

    (tmp_path / "unik_test_twin_c.py").write_text("NAME = 'c'\n")
    (tmp_path / "unik_test_twin_py.py").write_text("NAME = 'pure'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("UNIK_PURE", raising=False)
    seen: list[str] = []
    pair = accel.twin("unik_test_twin_c", "unik_test_twin_py", lambda m: seen.append(m.NAME))
    assert accel.twin("unik_test_twin_c", "unik_test_twin_py") is pair and accel.twins()["unik_test_twin_c"] is pair
    assert pair.implementation() == "c" and seen == ["c"]
    with accel.pure_twins():
        assert pair.implementation() == "pure" and seen == ["c", "pure"]
    assert pair.implementation() == "c" and seen == ["c", "pure", "c"]
    try:
        monkeypatch.setenv("UNIK_PURE", "1")
        accel.use_pure(None)  # back to what UNIK_PURE says
        assert pair.implementation() == "pure"
        accel.use_pure(False)  # C even so: a parity test compares both
        assert pair.implementation() == "c"
    finally:
        monkeypatch.undo()  # the environment this run began with, then every pair as it says
        accel.use_pure(None)
