"""How fast is unik's resolver? Cached and uncached lookups against dnsmasq, next to the host's getaddrinfo.

In one run, in a network namespace made here (removed after), dnsmasq on a TAP answers
for ``n0.test`` ... (authoritative, TTL 600):

* ``unik.cached_lookups_per_s``: ``stack.resolve("n0.test")`` on unik's stack (this process,
  on the TAP) once the answer is cached, for ``CACHED_S`` seconds;
* ``unik.uncached_ms``: the median latency of ``stack.resolve`` of names asked once each
  (one A query over the TAP, the answer parsed and checked);
* ``peers.host_getaddrinfo.uncached_ms``: the host's ``socket.getaddrinfo`` (glibc, AF_INET,
  ``/etc/netns/NS/resolv.conf`` naming the same dnsmasq) in a process in the namespace, for
  other names asked once each; ``peers.host_getaddrinfo.lookups_per_s``: the same call
  repeated on one name (glibc keeps no cache: each is a query);
* ``peers.asyncio_getaddrinfo.uncached_ms``: ``loop.getaddrinfo`` (glibc in asyncio's thread
  pool), what an asyncio application on the host waits;
* ``codec``: importing unik's DNS code and dnspython natively (when the dnspython wheel is
  at hand: ``UNIK_BENCH_DNSPYTHON=/path/to/dnspython.whl``) — the README's decision.

Figures are medians over ROUNDS interleaved rounds (unik, then the host, on names of their
own), ratios the medians of the rounds' ratios: unik/host for uncached latency (lower is
better) and cached unik lookups per second over the host's repeated getaddrinfo.  The host
asks dnsmasq over the namespace's loopback; unik through its TAP and its own stack.  Needs
root, /dev/net/tun and dnsmasq; without them it says what is missing and exits 0 without
touching the results file.

    python bench/dns.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import table, write

CACHED_S = 1.0
NAMES = 200
ROUNDS = 7

HOST_PROBE = r"""
import json, socket, statistics, sys, time
names, repeat_name, seconds = sys.argv[1].split(","), sys.argv[2], float(sys.argv[3])
socket.getaddrinfo(repeat_name, None, socket.AF_INET, socket.SOCK_STREAM)  # NSS modules loaded
lat = []
for name in names:
    t = time.perf_counter()
    infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    lat.append(time.perf_counter() - t)
    assert infos[0][4][0].startswith(sys.argv[5]), infos
n, end = 0, time.perf_counter() + seconds
while time.perf_counter() < end:
    socket.getaddrinfo(repeat_name, None, socket.AF_INET, socket.SOCK_STREAM)
    n += 1
import asyncio
async def aio(names):
    loop = asyncio.get_running_loop()
    out = []
    for name in names:
        t = time.perf_counter()
        await loop.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
        out.append(time.perf_counter() - t)
    return out
alat = asyncio.run(aio(sys.argv[4].split(",")))
print(json.dumps({"uncached_ms": statistics.median(lat) * 1e3, "lookups_per_s": n / seconds,
                  "asyncio_uncached_ms": statistics.median(alat) * 1e3}))
"""


def missing() -> str | None:
    """Why this bench cannot run here, or ``None``."""
    from unik.testing import tap_unavailable

    problem = tap_unavailable()
    if problem:
        return problem
    if shutil.which("dnsmasq") is None:
        return "needs dnsmasq (apt-get install dnsmasq-base)"
    return None


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def codec_import_ms() -> dict[str, Any]:
    """Import time of unik's DNS modules and, with its wheel, dnspython's (fresh interpreters, min of 5)."""
    own = ("import time; t=time.perf_counter(); from unik_tcpip.dns import wire, resolver, happy; "
           "q=wire.build_query(1, wire.encode_name('example.com'), 1); wire.parse_message(q); "
           "print((time.perf_counter()-t)*1e3)")
    pre = "import asyncio, socket, unik_tcpip.stack; "
    result: dict[str, Any] = {"unik_ms": min(float(subprocess.run(
        [sys.executable, "-c", pre + own], capture_output=True, text=True, check=True).stdout) for _ in range(5))}
    wheel = os.environ.get("UNIK_BENCH_DNSPYTHON")
    if wheel and Path(wheel).is_file():
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", tmp, wheel],
                           check=True)
            theirs = ("import time; t=time.perf_counter(); import dns.message, dns.rdtypes.IN.A, "
                      "dns.rdtypes.IN.AAAA, dns.rdtypes.ANY.CNAME; q=dns.message.make_query('example.com','A'); "
                      "dns.message.from_wire(q.to_wire()); print((time.perf_counter()-t)*1e3)")
            env = {**os.environ, "PYTHONPATH": tmp}
            result["dnspython_ms"] = min(float(subprocess.run(
                [sys.executable, "-c", pre + theirs], capture_output=True, text=True, check=True, env=env).stdout)
                for _ in range(5))
    return result


async def unik_side(ns: str, tap: str, prefix: str, rounds: list[tuple[list[str], list[str]]], cached_s: float,
                    probe: list[str]) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Rounds of unik's figures then the host's, each on names of its own (``probe`` runs while
    the TAP, and so dnsmasq, is up); a busy neighbour then slows both sides of a round alike."""
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork
    from unik_tcpip.stack import TcpipStack

    network = await TapNetwork.connect("service", tap, create=True)
    try:
        sh("ip", "link", "set", tap, "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{prefix}.1/24", "dev", tap)
        sh("ip", "-n", ns, "link", "set", tap, "up")
        stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                         ipv4=f"{prefix}.2/24", dns=f"{prefix}.1")
        try:
            first = rounds[0][0][0]
            for _ in range(100):  # dnsmasq starts listening on the TAP once it is up
                try:
                    await stack.resolve(first)
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            results = []
            for mine_names, host_names in rounds:
                latencies = []
                for name in mine_names[1:]:
                    t = time.perf_counter()
                    await stack.resolve(name)
                    latencies.append(time.perf_counter() - t)
                n = 0
                end = time.perf_counter() + cached_s
                while time.perf_counter() < end:
                    for _ in range(100):
                        await stack.resolve(first)
                    n += 100
                mine = {"uncached_ms": statistics.median(latencies) * 1e3, "cached_lookups_per_s": n / cached_s}
                half = len(host_names) // 2
                args = [*probe, ",".join(host_names[:half]), host_names[0], str(cached_s),
                        ",".join(host_names[half:]), prefix + "."]
                proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                            stderr=asyncio.subprocess.PIPE)
                out, err = await asyncio.wait_for(proc.communicate(), 600)
                if proc.returncode:
                    raise SystemExit(f"the host probe failed: {err.decode()[-2000:]}")
                results.append((mine, json.loads(out)))
            return results
        finally:
            await stack.disconnect()
    finally:
        await network.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer names, shorter runs")
    opts = parser.parse_args()
    why = missing()
    if why:
        print(f"bench/dns.py: skipped: {why}")
        return
    count = 60 if opts.quick else NAMES
    cached_s = 0.5 if opts.quick else CACHED_S
    prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    ns, tap = f"unik-bdns-{secrets.token_hex(3)}", f"ubd{secrets.token_hex(4)}"
    nrounds = 3 if opts.quick else ROUNDS
    names = [f"n{i}.test" for i in range(nrounds * 3 * count + 1)]
    rounds = [(names[i * 3 * count:i * 3 * count + count + 1], names[i * 3 * count + count + 1:(i + 1) * 3 * count + 1])
              for i in range(nrounds)]
    netns_etc = Path("/etc/netns") / ns
    sh("ip", "netns", "add", ns)
    dnsmasq = None
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        netns_etc.mkdir(parents=True)
        (netns_etc / "resolv.conf").write_text(f"nameserver {prefix}.1\noptions attempts:1 timeout:2\n")
        hosts = [f"--host-record={n},{prefix}.{i % 200 + 10}" for i, n in enumerate(names)]
        with open(f"/tmp/{ns}.conf", "w") as conf:
            conf.write("\n".join(h[2:] for h in hosts) + "\n")

        probe = ["ip", "netns", "exec", ns, sys.executable, "-c", HOST_PROBE]

        async def run_both() -> list[tuple[dict[str, float], dict[str, float]]]:
            nonlocal dnsmasq
            task = asyncio.ensure_future(unik_side(ns, tap, prefix, rounds, cached_s, probe))
            for _ in range(100):  # the TAP moves into the namespace as the stack starts
                await asyncio.sleep(0.05)
                if subprocess.run(["ip", "-n", ns, "link", "show", tap], capture_output=True).returncode == 0:
                    break
            await asyncio.sleep(0.2)
            dnsmasq = subprocess.Popen(
                ["ip", "netns", "exec", ns, "dnsmasq", "--no-daemon", f"--conf-file=/tmp/{ns}.conf", "--user=root",
                 "--no-resolv", "--no-hosts", f"--interface={tap}", "--bind-interfaces", "--local=/test/",
                 "--auth-zone=test", f"--auth-server=ns.test,{tap}", "--auth-ttl=600", "--cache-size=0",
                 f"--pid-file=/tmp/{ns}.pid"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return await task
        measured = asyncio.run(run_both())
    finally:
        if dnsmasq is not None:
            dnsmasq.kill()
            dnsmasq.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(netns_etc, ignore_errors=True)
        Path(f"/tmp/{ns}.conf").unlink(missing_ok=True)
    codec = codec_import_ms()

    def med(side: int, key: str) -> float:
        return statistics.median(r[side][key] for r in measured)

    def med_ratio(mine: str, theirs: str) -> float:
        return statistics.median(r[0][mine] / r[1][theirs] for r in measured)
    unik = {k: med(0, k) for k in ("uncached_ms", "cached_lookups_per_s")}
    host = {k: med(1, k) for k in ("uncached_ms", "lookups_per_s", "asyncio_uncached_ms")}
    results = {"cached_lookups_per_s": round(unik["cached_lookups_per_s"]),
               "uncached_ms": round(unik["uncached_ms"], 3), "import_ms": round(codec["unik_ms"], 2)}
    peers: dict[str, dict[str, float]] = {
        "host_getaddrinfo": {"uncached_ms": round(host["uncached_ms"], 3),
                             "lookups_per_s": round(host["lookups_per_s"])},
        "asyncio_getaddrinfo": {"uncached_ms": round(host["asyncio_uncached_ms"], 3)},
    }
    if "dnspython_ms" in codec:
        peers["dnspython"] = {"import_ms": round(codec["dnspython_ms"], 2)}
    ratios = {"uncached_latency_unik_over_host": round(med_ratio("uncached_ms", "uncached_ms"), 3),
              "uncached_latency_unik_over_asyncio": round(med_ratio("uncached_ms", "asyncio_uncached_ms"), 3),
              "cached_unik_over_host_getaddrinfo": round(med_ratio("cached_lookups_per_s", "lookups_per_s"), 2)}
    if "dnspython_ms" in codec:
        ratios["import_dnspython_over_unik"] = round(codec["dnspython_ms"] / codec["unik_ms"], 2)
    table([("unik cached lookups/s", f"{results['cached_lookups_per_s']:,}"),
           ("unik uncached lookup", f"{results['uncached_ms']:.3f} ms"),
           ("host getaddrinfo uncached", f"{peers['host_getaddrinfo']['uncached_ms']:.3f} ms"),
           ("asyncio getaddrinfo uncached", f"{peers['asyncio_getaddrinfo']['uncached_ms']:.3f} ms"),
           ("host getaddrinfo lookups/s", f"{peers['host_getaddrinfo']['lookups_per_s']:,}"),
           ("import unik dns", f"{results['import_ms']:.2f} ms"),
           *([("import dnspython", f"{codec['dnspython_ms']:.2f} ms")] if "dnspython_ms" in codec else [])])
    for key, value in ratios.items():
        print(f"  {key}: {value}")
    if not opts.quick:
        print(f"wrote {write('dns', results, peers, ratios)}")


if __name__ == "__main__":
    main()
