"""How fast is composition? A 50-device graph, composed and configured.

DESIGN.md asks for compose to be pure and fast: a 50-device graph in under 50 ms.
The peer is that budget (mirage's configure is OCaml and not runnable here), so the
ratio printed is time / budget (below 1.0 is within it).

``--baseline REV`` measures instead the commands a user waits for, today's unik against
unik at git revision REV (installed into a virtual environment of its own under
``build/bench-baseline/``), alternately in one run: ``unik --help``, ``unik configure -t
unix`` of examples/hello (each tree's own), and ``unik run --count 1`` of it to its exit:
the wall time of each and the CPU time it used (``*_cpu_s``, which a busy neighbour hardly
moves).  Where hvt unikernels build and run here (KVM, gcc, strace), also ``unik run --count 1``
of hello built for hvt up to the ``execve`` of the monitor ``unik-hvt`` (``strace``'s
timestamps, only ``execve`` traced), and the CPU time of its ``--dry-run`` (everything but
starting the monitor): what the CLI costs before the unikernel starts.  The commands
cache their byte code as an installed unik does (``PYTHONDONTWRITEBYTECODE`` is dropped for
them: with it both trees would compile every module from source at every command).  Medians
go under ``baseline`` in ``results/compose.json`` with the load average before and after (the
machine may be shared).

    python bench/compose.py [--baseline REV [--rounds N]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import ClassVar

from benchlib import (
    REPO,
    alternate,
    baseline_unik,
    example_copy,
    load_average,
    median_of,
    median_seconds,
    report_baseline,
    table,
    timed_command,
    write,
)
from unik.application import Application
from unik.compose import Implementation, TargetRef, compose
from unik.hookspecs import hookimpl
from unik.keys import Key, KeyValues
from unik.provider import Configured, KeyRef, Need, Provider, Request
from unik.target import Target
from unik.testing import PluginRegistry

BUDGET_S = 0.050
NET = Key("net", "network binding", per_device=True)
#: 11 stacks each on its own network, 11 filesystems each on its own disk, two consoles
#: and the shared clocks, sleep and random: 50 devices.
APPS = 11


def providers() -> list[type[Provider]]:
    class Net(Provider):
        PLUGIN_NAME = "b.net"
        kind = "network"
        implementation = "x:Net"
        keys = (NET,)

        @classmethod
        def configure(cls, request: Request) -> Configured:
            return Configured(options={"name": request.device}, key_options={"ifname": KeyRef("net", True)})

    class Disk(Provider):
        PLUGIN_NAME = "b.disk"
        kind = "block"
        implementation = "x:Disk"

    class Stack(Provider):
        PLUGIN_NAME = "b.stack"
        kind = "stack"
        implementation = "x:Stack"
        needs: ClassVar = {"network": Need("network"), "clock": Need("monotonic_clock"),
                           "random": Need("random"), "sleep": Need("sleep")}

    class Fs(Provider):
        PLUGIN_NAME = "b.fs"
        kind = "fs"
        implementation = "x:Fs"
        needs: ClassVar = {"block": Need("block"), "clock": Need("wall_clock")}

    singles = []
    for kind in ("monotonic_clock", "random", "sleep", "wall_clock", "console"):
        singles.append(type(f"P_{kind}", (Provider,), {"PLUGIN_NAME": f"b.{kind}", "kind": kind,
                                                       "implementation": f"x:{kind}"}))
    return [Net, Disk, Stack, Fs, *singles]


def application(root: Path) -> Path:
    params = [f"s{i}: Stack, f{i}: FileSystem" for i in range(APPS)] + ["console: Console", "audit: Console"]
    uses = "".join(
        f"[tool.unik.devices.s{i}.use]\nnetwork = 'net{i}'\n[tool.unik.devices.f{i}.use]\nblock = 'disk{i}'\n"
        for i in range(APPS)
    )
    pkg = root / "src" / "big"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        from unik.devices import Console, FileSystem, Stack
        async def start({", ".join(params)}) -> None: ...
        """))
    (root / "pyproject.toml").write_text(f"[tool.unik]\nname = 'big'\nmain = 'big:start'\n{uses}")
    return root / "pyproject.toml"


def to_exec(cmd: list[str], cwd: Path, binary: str, trace: Path) -> float | None:
    """Seconds from starting ``cmd`` to its ``execve`` of a program named ``binary`` (``None``: none, or failed).

    Measured by ``strace -f --seccomp-bpf -e trace=execve``: only ``execve`` stops the traced
    processes, so the tracing hardly slows the command itself.
    """
    done = subprocess.run(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=execve", "-ttt", "-o", str(trace),
                           *cmd], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode:
        return None
    stamps = [(float(parts[1]), line) for line in trace.read_text().splitlines()
              if len(parts := line.split(None, 2)) == 3 and parts[2].startswith("execve(") and "= 0" in parts[2]]
    monitor = [t for t, line in stamps if f"/{binary}\"" in line]
    return round(monitor[0] - stamps[0][0], 4) if stamps and monitor else None


def hvt_missing() -> str | None:
    """Why unik cannot build and run hvt unikernels here for the figure (``None``: it can)."""
    if shutil.which("strace") is None:
        return "strace is missing (apt-get install strace)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not usable"
    try:
        from unik_solo5.hvt_target import build_missing
    except ImportError:
        return "unik-target-solo5 is not installed"
    return build_missing()


def startup_against(rev: str, rounds: int) -> None:
    """``--baseline REV``: the commands' start-up, today's unik and REV's in turn."""
    short, old = baseline_unik(rev)
    sides = {"head": (Path(sys.executable).with_name("unik"), REPO), short: (old, old.parents[2])}
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the commands cache byte code, as installed (module doc)
    load_before = load_average()
    hvt_why = hvt_missing()
    if hvt_why:
        print(f"  (no hvt figure: {hvt_why})")
    with tempfile.TemporaryDirectory(prefix="unik-bench-startup-") as tmp:
        measures: dict[str, Callable[[], float | None]] = {}
        cpu: dict[str, list[float | None]] = {}
        for label, (unik, tree) in sides.items():
            hello = example_copy("hello", tree, Path(tmp) / label / "hello")
            configure = [str(unik), "-q", "configure", "-t", "unix"]
            for step in (configure, [str(unik), "-q", "build"]):  # a built artifact, before any timing
                if timed_command(step, hello) is None:
                    raise SystemExit(f"{label}: {' '.join(step)} failed in {hello}")
            for name, cmd in (("help", [str(unik), "--help"]), ("configure_hello_unix", configure),
                              ("run_hello_unix", [str(unik), "run", "--count", "1"])):
                cpu[f"{label}.{name}_cpu_s"] = []
                measures[f"{label}.{name}_s"] = partial(timed_command, cmd, hello, cpu[f"{label}.{name}_cpu_s"])
            if hvt_why is None:
                hvt = example_copy("hello", tree, Path(tmp) / label / "hello-hvt")
                for step in ([str(unik), "-q", "configure", "-t", "hvt"], [str(unik), "-q", "build"]):
                    if timed_command(step, hvt) is None:
                        raise SystemExit(f"{label}: {' '.join(step)} failed in {hvt}")
                measures[f"{label}.run_hello_hvt_to_monitor_s"] = partial(
                    to_exec, [str(unik), "run", "--count", "1"], hvt, "unik-hvt", Path(tmp) / label / "strace.txt")
                cpu[f"{label}.dry_run_hello_hvt_cpu_s"] = []  # all unik does before it starts the monitor, in CPU
                measures[f"{label}.dry_run_hello_hvt_s"] = partial(
                    timed_command, [str(unik), "run", "--dry-run", "--count", "1"], hvt,
                    cpu[f"{label}.dry_run_hello_hvt_cpu_s"])
        alternate(measures, 1)  # warm: caches of plugins and entry points, the unpacked .pyz
        for values in cpu.values():
            values.clear()
        got = alternate(measures, rounds)
    figures = {name: median_of(values) for name, values in {**got, **cpu}.items()}
    head = {k.split(".", 1)[1]: v for k, v in figures.items() if k.startswith("head.")}
    base = {k.split(".", 1)[1]: v for k, v in figures.items() if k.startswith(f"{short}.")}
    report_baseline("compose", "command start-up", short, rounds, head, base, load_before)


def main() -> None:
    class Bench(Target):
        PLUGIN_NAME = "bench"

    class Plugin:
        UNIK_API = ">=1"

        @staticmethod
        @hookimpl
        def unik_register_targets() -> list[type[Target]]:
            return [Bench]

        @staticmethod
        @hookimpl
        def unik_register_providers() -> list[type[Provider]]:
            return providers()

    with tempfile.TemporaryDirectory() as tmp:
        pyproject = application(Path(tmp))
        app = Application.load(pyproject)
        impls = [Implementation(p, "bench") for p in providers()]
        keys = KeyValues([NET])
        target = TargetRef("bench", "bench")
        plan = compose(app, app.devices, impls, target=target, keys=keys)
        devices = len(plan.nodes)
        compose_s = median_seconds(lambda: compose(app, app.devices, impls, target=target, keys=keys), 50)
        load_s = median_seconds(lambda: Application.load(pyproject), 20)
        registry = PluginRegistry().add(Plugin(), "bench")
        project = registry.project(Path(tmp))
        configure_s = median_seconds(lambda: project.configure("bench", {}), 10)
    print(f"compose: {devices}-device graph")
    table([
        ("compose (pure)", f"{compose_s * 1e3:.2f} ms"),
        ("load application (toml + import + signature)", f"{load_s * 1e3:.2f} ms"),
        ("configure (load + compose + plan.json + main.py)", f"{configure_s * 1e3:.2f} ms"),
        ("compose / 50 ms budget", f"{compose_s / BUDGET_S:.3f}"),
    ])
    write(
        "compose",
        unik={"devices": devices, "compose_ms": compose_s * 1e3, "load_ms": load_s * 1e3,
              "configure_ms": configure_s * 1e3},
        peers={"budget": {"compose_ms": BUDGET_S * 1e3}},
        ratios={"compose_over_budget": compose_s / BUDGET_S},
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", metavar="REV", help="command start-up against unik at git revision REV")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds with --baseline (default 15)")
    args = parser.parse_args()
    startup_against(args.baseline, args.rounds) if args.baseline else main()
