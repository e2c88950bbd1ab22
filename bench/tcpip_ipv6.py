"""IPv6 against IPv4 on the same unik stack: bulk TCP both ways and HTTP requests/s, ratios in one run.

One dual stack on one TAP (virtio-net offloads on) whose kernel side sits in a network
namespace with ``10.213.7.1/24`` and ``fd00:213:7::1/64``; unik has ``.2`` and ``::2``.
Each round measures both families back to back, alternating which goes first:

* ``send_gbps`` / ``recv_gbps``: 128 MiB (32 with ``--quick``) over one connection to a
  Python socket in the namespace, data checked outside the timed path (bench/tcpip.py's
  ``bulk``);
* ``http_rps`` / ``http_c100_rps``: ``wrk -t1 -c10`` (``-c100``) against ``examples/http``
  on unik's stack, ``http://10.213.7.2:8080/`` and ``http://[fd00:213:7::2]:8080/`` (the
  same server: it listens on both families).

The ratios (IPv6 / IPv4) are the medians of the rounds' ratios; issue 15's target is at
least 90 %.  Beside them, the CPU this process (the whole stack) spends per GiB and per
request for each family, and their ratio (IPv4's over IPv6's), which a loaded machine
moves far less than the throughputs.  Results in ``bench/results/tcpip_ipv6.json``.  Needs root, /dev/net/tun,
iproute2 and wrk (it says what is missing and exits 0 otherwise).

    python bench/tcpip_ipv6.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import tcpip
from benchlib import RESULTS, machine, table

HOST6, UNIK6 = "fd00:213:7::1", "fd00:213:7::2"


async def figures(quick: bool, rounds: int) -> dict[str, Any]:
    """Both families' figures per round, on one stack."""
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork
    from unik_tcpip.addr import ip_bytes
    from unik_tcpip.stack import TcpipStack

    ns = f"unik-bench6-{secrets.token_hex(3)}"
    ifname = f"ukb{secrets.token_hex(4)}"
    tcpip.sh("ip", "netns", "add", ns)
    network = await TapNetwork.connect("service", ifname, offload=True, create=True)
    try:
        tcpip.sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                 "net.ipv6.conf.default.accept_dad=0")
        tcpip.sh("ip", "link", "set", ifname, "netns", ns)
        tcpip.sh("ip", "-n", ns, "addr", "add", f"{tcpip.HOST}/24", "dev", ifname)
        tcpip.sh("ip", "-n", ns, "addr", "add", f"{HOST6}/64", "dev", ifname, "nodad")
        tcpip.sh("ip", "-n", ns, "link", "set", ifname, "up")
        stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                         ipv4=f"{tcpip.UNIK}/24", ipv6=f"{UNIK6}/64")
        try:
            for _ in range(100):  # duplicate address detection: about a second
                if stack.ipv6.owns(ip_bytes(UNIK6)):
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"{UNIK6} never passed duplicate address detection")
            server = asyncio.ensure_future(tcpip.http_app().start(stack, tcpip._Store(), tcpip._Console(), port=8080))
            await asyncio.sleep(0.1)
            size = (32 if quick else 128) << 20
            seconds = 2 if quick else 3
            runs: dict[str, dict[str, list[float]]] = {
                fam: {"send": [], "recv": [], "http": [], "http_c100": []} for fam in ("ipv4", "ipv6")}
            # CPU this process (the whole stack) spends: per GiB moved, per request.
            cpu: dict[str, dict[str, list[float]]] = {
                fam: {"send": [], "recv": [], "http": [], "http_c100": []} for fam in ("ipv4", "ipv6")}

            async def timed_bulk(fam: str, send: bool, port: int) -> None:
                before = _cpu()
                runs[fam]["send" if send else "recv"].append(await tcpip.bulk(stack, ns, size, send, port, hosts[fam]))
                cpu[fam]["send" if send else "recv"].append((_cpu() - before) / (size / 2**30))
            urls = {"ipv4": f"http://{tcpip.UNIK}:8080/", "ipv6": f"http://[{UNIK6}]:8080/"}
            hosts = {"ipv4": tcpip.HOST, "ipv6": HOST6}
            port = 9100
            try:
                for i in range(rounds):
                    for fam in ("ipv4", "ipv6") if i % 2 == 0 else ("ipv6", "ipv4"):
                        await timed_bulk(fam, True, port)
                        await timed_bulk(fam, False, port + 1)
                        port += 2
                        for key, conns in (("http", 10), ("http_c100", 100)):
                            rps, us = await tcpip.wrk(urls[fam], ns, seconds, conns)
                            runs[fam][key].append(rps)
                            cpu[fam][key].append(us)
            finally:
                server.cancel()
            out: dict[str, Any] = {}
            for fam, values in runs.items():
                out[fam] = {f"{k}_{'gbps' if k in ('send', 'recv') else 'rps'}": round(statistics.median(v), 3)
                            for k, v in values.items()}
            out["ratios"] = {k: round(statistics.median(
                six / four for six, four in zip(runs["ipv6"][k], runs["ipv4"][k], strict=True)), 4)
                for k in runs["ipv4"]}
            # CPU: IPv4's cost over IPv6's (>= 1: IPv6 costs no more), hardly moved by the machine's load.
            unit = {"send": "cpu_s_per_gib", "recv": "cpu_s_per_gib", "http": "cpu_us_per_request",
                    "http_c100": "cpu_us_per_request"}
            out["cpu"] = {fam: {f"{k}_{unit[k]}": round(statistics.median(v), 3) for k, v in values.items()}
                          for fam, values in cpu.items()}
            out["cpu_ratios"] = {k: round(statistics.median(cpu["ipv4"][k]) / statistics.median(cpu["ipv6"][k]), 4)
                                 for k in cpu["ipv4"]}
            out["round_ratios"] = {k: [round(six / four, 3) for six, four in
                                       zip(runs["ipv6"][k], runs["ipv4"][k], strict=True)] for k in runs["ipv4"]}
            out["stats"] = {k: v for k, v in stack.stats.items() if k in (
                "ipv6.rx", "ipv6.tx", "ipv4.rx", "ipv4.tx", "tcp.predicted", "ipv6.fragments_sent")}
            return out
        finally:
            await stack.disconnect()
    finally:
        await network.disconnect()
        tcpip.sh("ip", "netns", "del", ns, check=False)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller transfers, shorter wrk runs")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 5, 3 with --quick)")
    args = parser.parse_args()
    why = tcpip.missing()
    if why:
        print(f"bench/tcpip_ipv6.py: skipped: {why}")
        return 0
    rounds = args.rounds or (3 if args.quick else 5)
    data = asyncio.run(figures(args.quick, rounds))
    data.update({"machine": machine(), "notes": {
        "rounds": rounds, "target": "issue 15: IPv6 >= 90 % of IPv4 on the same stack (bulk both ways, HTTP)",
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())}})
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tcpip_ipv6.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    v4, v6, r, c = data["ipv4"], data["ipv6"], data["ratios"], data["cpu_ratios"]
    print("IPv6 against IPv4 on one unik stack over a TAP (offloads on), the kernel as the peer")
    table([
        ("send", f"IPv6 {v6['send_gbps']:.3f} Gbit/s, IPv4 {v4['send_gbps']:.3f}  ({r['send']:.1%}; "
                 f"CPU IPv4/IPv6 {c['send']:.1%})"),
        ("receive", f"IPv6 {v6['recv_gbps']:.3f} Gbit/s, IPv4 {v4['recv_gbps']:.3f}  ({r['recv']:.1%}; "
                    f"CPU {c['recv']:.1%})"),
        ("HTTP -c10", f"IPv6 {v6['http_rps']:.0f} req/s, IPv4 {v4['http_rps']:.0f}  ({r['http']:.1%}; "
                      f"CPU {c['http']:.1%})"),
        ("HTTP -c100", f"IPv6 {v6['http_c100_rps']:.0f} req/s, IPv4 {v4['http_c100_rps']:.0f}  "
                       f"({r['http_c100']:.1%}; CPU {c['http_c100']:.1%})"),
    ])
    print(f"  (medians of {rounds} rounds; load average {data['notes']['load_average']}: the per-round "
          f"ratios in the JSON show how much the machine's load moves them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
