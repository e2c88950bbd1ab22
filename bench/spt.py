"""examples/http under the spt sandbox versus the plain unix target, both on unik's TCP/IP stack.

* ``unik.spt_http_rps``: ``wrk -t1 -c10`` from a network namespace, through a TAP, against
  examples/http run by ``unik run -t spt`` (tender, namespaces, seccomp filter);
* ``unik.unix_http_rps``: the same application and stack on the same TAP under
  ``unik run -t unix`` (no sandbox);
* ``ratios.spt_over_unix``: what the sandbox costs (1.0: nothing);
* ``unik.spt_startup_s``, ``unik.unix_startup_s``: from ``unik run`` to the first HTTP
  response (curl from the namespace retried every 20 ms: each try costs an ``ip netns
  exec``, alike for both), and ``ratios.spt_startup_over_unix``.

The two are measured interleaved (spt, unix, unix, spt, spt, unix: each target starts a
round as often as the other), a fresh server per run, and the median of the runs is
reported, so that a slow spell of the shared machine weighs on both alike.

Needs root, /dev/net/tun, iproute2 and wrk; without them it says what is missing and
exits 0.  ``--quick``: 2 rounds of 2-second runs instead of 3 rounds of 5 seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import table, write

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


def serve_and_measure(app: Path, target: str, ns: str, seconds: int) -> tuple[float, float]:
    """Start the server for ``target`` in ``ns``, time its first response, run wrk against it, stop it.

    Returns (requests/s, seconds to the first response).
    """
    started = time.monotonic()
    server = subprocess.Popen(["ip", "netns", "exec", ns, UNIK_BIN, "run", "-t", target, "--net", "service=spt0"],
                              cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        startup = first_response(ns, started)
        assert server.stdout is not None
        first = server.stdout.readline()
        if not first.startswith("serving on"):
            raise RuntimeError(f"{target}: the server did not start: {first!r}")
        out = subprocess.run(["ip", "netns", "exec", ns, "wrk", "-t1", "-c10", f"-d{seconds}s",
                              f"http://{ADDR}:8080/"], capture_output=True, text=True, timeout=seconds + 60).stdout
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not match:
            raise RuntimeError(f"{target}: wrk failed: {out}")
        return float(match.group(1)), startup
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def main() -> int:
    """Run both targets and write ``results/spt.json``."""
    lacking = missing()
    if lacking:
        print(f"bench/spt.py: skipped, needs {lacking}")
        return 0
    quick = "--quick" in sys.argv
    seconds, rounds = (2, 2) if quick else (5, 3)
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
            runs: dict[str, list[float]] = {"spt": [], "unix": []}
            starts: dict[str, list[float]] = {"spt": [], "unix": []}
            for i in range(rounds):
                order = ("spt", "unix") if i % 2 == 0 else ("unix", "spt")
                for target in order:
                    rate, startup = serve_and_measure(app, target, ns, seconds)
                    runs[target].append(rate)
                    starts[target].append(startup)
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
    rps = {t: statistics.median(v) for t, v in runs.items()}
    boot = {t: statistics.median(v) for t, v in starts.items()}
    unik = {"spt_http_rps": round(rps["spt"], 1), "unix_http_rps": round(rps["unix"], 1),
            "spt_startup_s": round(boot["spt"], 3), "unix_startup_s": round(boot["unix"], 3)}
    ratios = {"spt_over_unix": round(rps["spt"] / rps["unix"], 3),
              "spt_startup_over_unix": round(boot["spt"] / boot["unix"], 3)}
    path = write("spt", unik, {}, ratios)
    table([("spt http (req/s, median)", f"{rps['spt']:.0f}"),
           ("  runs", " ".join(f"{r:.0f}" for r in runs["spt"])),
           ("unix http (req/s, median)", f"{rps['unix']:.0f}"),
           ("  runs", " ".join(f"{r:.0f}" for r in runs["unix"])),
           ("spt / unix", f"{ratios['spt_over_unix']:.3f}"),
           ("spt start to first response (s, median)", f"{boot['spt']:.3f}"),
           ("  runs", " ".join(f"{r:.3f}" for r in starts["spt"])),
           ("unix start to first response (s, median)", f"{boot['unix']:.3f}"),
           ("  runs", " ".join(f"{r:.3f}" for r in starts["unix"])),
           ("spt / unix start-up", f"{ratios['spt_startup_over_unix']:.3f}"), ("results", str(path))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
