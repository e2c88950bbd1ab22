"""examples/http under the spt sandbox versus the plain unix target, both on unik's TCP/IP stack.

* ``unik.spt_http_rps``: ``wrk -t1 -c10`` from a network namespace, through a TAP, against
  examples/http run by ``unik run -t spt`` (tender, namespaces, seccomp filter);
* ``unik.unix_http_rps``: the same application and stack on the same TAP under
  ``unik run -t unix`` (no sandbox);
* ``ratios.spt_over_unix``: what the sandbox costs (1.0: nothing);
* ``unik.spt_startup_s``, ``unik.unix_startup_s``: from ``unik run`` to the first HTTP
  response (curl from the namespace retried every 20 ms: each try costs an ``ip netns
  exec``, alike for both), and ``ratios.spt_startup_over_unix``.

The hardening's own cost (issue 19: no more than 10 % of either figure): the spt
artifact is also run by the tender directly (``unik-spt ... -- python -I -S app/...``,
the command ``unik run --dry-run`` prints, so without the ``unik`` command's own
start-up) in variants that leave out one step each, through a bootstrap the bench
writes beside ``__spt__.py`` (nothing in unik can turn a step off):

* ``tender.full``: every step (the memory cgroup when the host allows one: the tender
  runs under ``nsenter --net``, ``unik run`` under ``ip netns exec``, whose own sysfs
  has no cgroup file system, so ``spt`` above runs with ``RLIMIT_AS`` alone);
* ``tender.no_cgroup``: no memory cgroup (``RLIMIT_AS`` only);
* ``tender.no_root``: no read-only root before the imports (``unik_solo5.root``);
* ``tender.no_first_filter``: no first-stage seccomp filter;
* ``tender.no_seal``: no seal (final namespaces, empty root, allowlist);
* ``tender.none``: none of these: the tender's PID namespace, tracing, environment,
  descriptors and rlimits only.

``ratios.hardening_rps`` is ``tender.full``'s requests/s over ``tender.none``'s,
``ratios.hardening_startup`` its start-up over ``tender.none``'s and
``hardening_cpu_per_request`` its CPU time per request (the whole server process tree,
start-up included, from the kernel's accounting: steadier than requests/s on a shared
machine) over ``tender.none``'s; ``ratios.<step>_rps``, ``<step>_startup`` and
``<step>_cpu_per_request`` compare ``tender.full`` with the variant without that step.
Start-up is measured apart too, twice as many rounds of start, first response, stop:
its wall time (``*_startup_s``, ``ratios.*_startup``) and the CPU seconds the server's
process tree took (``*_startup_cpu_s``, ``ratios.*_startup_cpu``).

Every variant is measured interleaved (the order reverses each round), a fresh server
per run, and the median of the runs is reported, so that a slow spell of the shared
machine weighs on all alike.

Needs root, /dev/net/tun, iproute2 and wrk; without them it says what is missing and
exits 0.  ``--quick``: 2 rounds of 2-second runs instead of 5 rounds of 4 seconds.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import table, write
from unik_solo5 import memory

ROOT = Path(__file__).resolve().parents[1]
UNIK_BIN = str(Path(sys.executable).parent / "unik")
HOST, ADDR = "10.78.0.1", "10.78.0.2"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def missing() -> str | None:
    """What this machine lacks for the benchmark, or None."""
    if os.geteuid() != 0:
        return "root"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun"
    for tool in ("ip", "wrk", "curl"):
        if shutil.which(tool) is None:
            return tool
    return None


def first_response(ns: str, started: float) -> float:
    """Seconds from ``started`` until the server in ``ns`` answers an HTTP request (at most 60 s)."""
    deadline = started + 60
    while time.monotonic() < deadline:
        got = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "--max-time", "1",
                              f"http://{ADDR}:8080/"], capture_output=True, timeout=30)
        if got.returncode == 0:
            return time.monotonic() - started
        time.sleep(0.02)
    raise RuntimeError("no HTTP response within 60 s")


def serve_and_measure(cwd: Path, command: list[str], ns: str, seconds: int,
                      env: dict[str, str] | None = None, enter: list[str] | None = None
                      ) -> tuple[float, float, float]:
    """Start the server ``command`` in ``ns``, time its first response, run wrk against it, stop it.

    ``enter`` is how to enter the namespace (``ip netns exec NS``, whose new sysfs shows
    the namespace's TAP to ``unik run``'s checks, but no cgroup file system).
    Returns (requests/s, seconds to the first response, CPU microseconds per request);
    with ``seconds`` 0 no wrk: (0, seconds to the first response, CPU seconds of the run).
    """
    started = time.monotonic()
    server = subprocess.Popen([*(enter or ["ip", "netns", "exec", ns]), *command], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        try:
            startup = first_response(ns, started)
        except RuntimeError:
            server.kill()
            _, err = server.communicate(timeout=30)
            raise RuntimeError(f"{command[:3]}...: no HTTP response within 60 s: {err}") from None
        assert server.stdout is not None
        first = server.stdout.readline()
        if not first.startswith("serving on"):
            raise RuntimeError(f"{command[:3]}: the server did not start: {first!r}")
        if seconds == 0:  # start-up alone: the CPU seconds of the tree from exec to the first response
            server.send_signal(signal.SIGTERM)
            _, _, usage = os.wait4(server.pid, 0)
            server.returncode = 0
            return 0.0, startup, usage.ru_utime + usage.ru_stime
        out = subprocess.run(["ip", "netns", "exec", ns, "wrk", "-t1", "-c10", f"-d{seconds}s",
                              f"http://{ADDR}:8080/"], capture_output=True, text=True, timeout=seconds + 60).stdout
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        count = re.search(r"(\d+) requests in", out)
        if not match or not count:
            raise RuntimeError(f"{command[:3]}: wrk failed: {out}")
        server.send_signal(signal.SIGTERM)
        # The CPU the server's whole process tree used (start-up included), from the kernel's
        # accounting of the reaped tree: steadier than requests/s when other work competes.
        _, _, usage = os.wait4(server.pid, 0)
        server.returncode = 0
        cpu = usage.ru_utime + usage.ru_stime
        return float(match.group(1)), startup, cpu / int(count.group(1)) * 1e6
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)


#: Hardening steps a variant leaves out: what its bootstrap turns into a no-op.
SKIPS = {
    "no_root": "boot.sandbox_root.enter = lambda *args: None",
    "no_first_filter": "_sandbox.first_stage = lambda program: None",
    "no_seal": "_sandbox.enter = lambda *args: None",
}
BOOTSTRAP = """\
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from unik_solo5 import _sandbox, boot  # noqa: E402

{skips}
boot.boot(os.path.join(HERE, "__spt__.py"))
"""
VARIANTS = ("full", "no_cgroup", "no_root", "no_first_filter", "no_seal", "none")


def tender_commands(app: Path, ns: str) -> dict[str, list[str]]:
    """The tender's command for each variant (without the memory cgroup, added per run)."""
    dry = subprocess.run(["ip", "netns", "exec", ns, UNIK_BIN, "run", "-t", "spt", "--dry-run", "--net",
                          "service=spt0"], cwd=app, capture_output=True, text=True, check=True,
                         timeout=120).stdout.strip().splitlines()[-1]
    words = shlex.split(dry)
    words = words[next(i for i, w in enumerate(words) if w.endswith("unik-spt")):]
    script = Path(next(w for w in words if w.endswith("__spt__.py")))
    out = {}
    for variant in VARIANTS:
        skips = list(SKIPS.values()) if variant == "none" else [SKIPS[variant]] if variant in SKIPS else []
        path = script if not skips else script.with_name(f"__spt_bench_{variant}__.py")
        if skips:
            path.write_text(BOOTSTRAP.format(skips="\n".join(skips)))
        out[variant] = [str(path) if w == str(script) else w for w in words]
    return out


def run_variant(app: Path, variant: str, command: list[str], ns: str, seconds: int
                ) -> tuple[float, float, float]:
    """One run of a tender variant, with a memory cgroup of its own unless it leaves that out."""
    mem = int(next(w for w in command if w.startswith("--mem=")).split("=")[1])
    cgroup = None
    if variant not in ("no_cgroup", "none"):
        cgroup, _ = memory.make(mem, f"bench-{os.getpid()}-{time.monotonic_ns()}")
    extra = [f"--as={memory.address_space_mib(mem, cgroup)}"]
    if cgroup is not None:
        extra.append(f"--cgroup={cgroup.path}")
    try:
        # nsenter: the network namespace alone, so that the cgroup stays at its path.
        return serve_and_measure(app, [command[0], *extra, *command[1:]], ns, seconds,
                                 env={"UNIK_PROG": "http-spt"}, enter=["nsenter", f"--net=/run/netns/{ns}"])
    finally:
        if cgroup is not None:
            cgroup.remove()


def main() -> int:
    """Run both targets and write ``results/spt.json``."""
    lacking = missing()
    if lacking:
        print(f"bench/spt.py: skipped, needs {lacking}")
        return 0
    quick = "--quick" in sys.argv
    seconds, rounds = (2, 2) if quick else (4, 5)
    ns = f"unikbenchspt{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "http"
        shutil.copytree(ROOT / "examples" / "http", app, ignore=shutil.ignore_patterns("_build", "dist"))
        for target in ("unix", "spt"):
            net = ["--net", "service=spt0"] if target == "unix" else []
            sh(UNIK_BIN, "-q", "-C", str(app), "configure", "-t", target, *net, f"--ipv4={ADDR}/24")
            sh(UNIK_BIN, "-q", "-C", str(app), "build", "-t", target)
        sh("ip", "netns", "add", ns)
        try:
            sh("ip", "-n", ns, "tuntap", "add", "dev", "spt0", "mode", "tap", "vnet_hdr")
            sh("ip", "-n", ns, "addr", "add", f"{HOST}/24", "dev", "spt0")
            sh("ip", "-n", ns, "link", "set", "spt0", "up")
            tender = tender_commands(app, ns)
            names = ["unix", "spt", *(f"tender.{v}" for v in VARIANTS)]
            runs: dict[str, list[float]] = {n: [] for n in names}
            starts: dict[str, list[float]] = {n: [] for n in names}
            cpus: dict[str, list[float]] = {n: [] for n in names}
            for i in range(rounds):
                for name in names if i % 2 == 0 else names[::-1]:  # first and last in turn
                    if name.startswith("tender."):
                        rate, startup, cpu = run_variant(app, name[7:], tender[name[7:]], ns, seconds)
                    else:
                        command = [UNIK_BIN, "run", "-t", name, "--net", "service=spt0"]
                        rate, startup, cpu = serve_and_measure(app, command, ns, seconds)
                    runs[name].append(rate)
                    starts[name].append(startup)
                    cpus[name].append(cpu)
            # Start-up alone, more often (it is short): wall time and the CPU it took.
            starts = {n: [] for n in names}
            start_cpu: dict[str, list[float]] = {n: [] for n in names}
            for i in range(rounds * 2):
                for name in names if i % 2 == 0 else names[::-1]:
                    if name.startswith("tender."):
                        _, startup, cpu = run_variant(app, name[7:], tender[name[7:]], ns, 0)
                    else:
                        command = [UNIK_BIN, "run", "-t", name, "--net", "service=spt0"]
                        _, startup, cpu = serve_and_measure(app, command, ns, 0)
                    starts[name].append(startup)
                    start_cpu[name].append(cpu)
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
    rps = {t: statistics.median(v) for t, v in runs.items()}
    boot = {t: statistics.median(v) for t, v in starts.items()}
    boot_cpu = {t: statistics.median(v) for t, v in start_cpu.items()}
    cpu_us = {t: statistics.median(v) for t, v in cpus.items()}
    unik: dict[str, float] = {}
    for name in names:
        key = name.replace("tender.", "tender_")
        unik[f"{key}_http_rps"] = round(rps[name], 1)
        unik[f"{key}_startup_s"] = round(boot[name], 3)
        unik[f"{key}_cpu_us_per_request"] = round(cpu_us[name], 1)
        unik[f"{key}_startup_cpu_s"] = round(boot_cpu[name], 3)
    ratios = {"spt_over_unix": round(rps["spt"] / rps["unix"], 3),
              "spt_startup_over_unix": round(boot["spt"] / boot["unix"], 3),
              "hardening_rps": round(rps["tender.full"] / rps["tender.none"], 3),
              "hardening_startup": round(boot["tender.full"] / boot["tender.none"], 3),
              "hardening_cpu_per_request": round(cpu_us["tender.full"] / cpu_us["tender.none"], 3),
              "hardening_startup_cpu": round(boot_cpu["tender.full"] / boot_cpu["tender.none"], 3)}
    for variant in VARIANTS[1:-1]:
        step = variant[3:]
        ratios[f"{step}_rps"] = round(rps["tender.full"] / rps[f"tender.{variant}"], 3)
        ratios[f"{step}_startup"] = round(boot["tender.full"] / boot[f"tender.{variant}"], 3)
        ratios[f"{step}_cpu_per_request"] = round(cpu_us["tender.full"] / cpu_us[f"tender.{variant}"], 3)
        ratios[f"{step}_startup_cpu"] = round(boot_cpu["tender.full"] / boot_cpu[f"tender.{variant}"], 3)
    path = write("spt", unik, {}, ratios)
    rows = []
    for name in names:
        rows.append((f"{name} req/s (median; runs)", f"{rps[name]:.0f}; " + " ".join(f"{r:.0f}" for r in runs[name])))
        rows.append((f"{name} start to first response s", f"{boot[name]:.3f}; "
                     + " ".join(f"{r:.3f}" for r in starts[name])))
        rows.append((f"{name} CPU us per request", f"{cpu_us[name]:.1f}; " + " ".join(f"{r:.1f}" for r in cpus[name])))
        rows.append((f"{name} start-up CPU s",
                     f"{boot_cpu[name]:.3f}; " + " ".join(f"{r:.3f}" for r in start_cpu[name])))
    rows += [(f"ratio {k}", f"{v:.3f}") for k, v in ratios.items()]
    rows.append(("results", str(path)))
    table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
