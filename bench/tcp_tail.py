"""Lost tails on a TAP: how long 5 MiB downloads from unik's stack take without offloads.

A Python client in a network namespace downloads 5 MiB from unik's stack (this process,
on a TAP with offloads off, as on a VM NIC without TSO) ``--tries`` times, at MTU 1500
and 576.  When unik writes long bursts, the kernel's ACKs can overflow the TAP's queue;
when the ACKs of a transfer's tail are lost, only a tail loss probe (RFC 8985) or the
retransmission timeout brings them back; when segments in the middle are lost, RACK
(RFC 8985 6) resends them a reordering window after a later one was delivered.  Per MTU
and configuration it prints the median time, how many tries took over 0.9 s, and the
stack's counters (RTOs, probes, RACK's losses, frames the TAP dropped), and writes them
to ``results/tcp_tail.json`` with the load average.  The configurations: the defaults
(RACK, tail loss probes, a 200 ms minimum RTO, bursts of 64 segments), the same without
RACK, and the stack before all of them (no probes, a 1 s minimum RTO, unbounded
bursts).  The client checks each download's SHA-256 after its clock stopped.

Needs root, /dev/net/tun and iproute2; without them it says what is missing and exits 0.

    python bench/tcp_tail.py [--tries N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
from typing import Any

from unik.testing import tap_unavailable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import RESULTS, machine

PREFIX = "10.213.9"
HOST, UNIK = f"{PREFIX}.1", f"{PREFIX}.2"
SIZE = 5 << 20

CLIENT = r"""
import hashlib, socket, sys, time
host, port, tries, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for _ in range(tries):
    start = time.perf_counter()
    s = socket.create_connection((host, port), timeout=30)
    chunks = []
    while data := s.recv(1 << 20):
        chunks.append(data)
    elapsed = time.perf_counter() - start
    s.close()
    body = b"".join(chunks)
    print(f"{elapsed:.4f} {len(body)} {hashlib.sha256(body).hexdigest()}", flush=True)
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=60)


async def one_configuration(mtu: int, tries: int, config: Any) -> dict[str, Any]:
    """``tries`` downloads over a fresh namespace and TAP with ``config``; times and counters."""
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork
    from unik_tcpip.stack import TcpipStack

    ns, ifname = f"unik-tail-{os.getpid()}-{secrets.token_hex(2)}", f"ukt{secrets.token_hex(4)}"
    body = os.urandom(SIZE)
    digest = hashlib.sha256(body).hexdigest()
    sh("ip", "netns", "add", ns)
    network = await TapNetwork.connect("service", ifname, create=True)
    try:
        # The TAP it created has the kernel's default MTU: lower both sides.
        sh("ip", "link", "set", ifname, "mtu", str(mtu))
        network.mtu = mtu
        sh("ip", "link", "set", ifname, "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{HOST}/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                         ipv4=f"{UNIK}/24", tcp_config=config)
        try:
            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(body)
                await writer.drain()
                writer.close()

            await stack.tcp.start_server(serve, 9100)
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, UNIK, "9100", str(tries), str(SIZE),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60 + 10 * tries)
            if proc.returncode:
                raise RuntimeError(f"the client failed: {err.decode()}")
            times = []
            for line in out.decode().split("\n"):
                if line:
                    elapsed, n, got = line.split()
                    if int(n) != SIZE or got != digest:
                        raise RuntimeError(f"a download differs: {n} bytes, sha256 {got}")
                    times.append(float(elapsed))
            stats = stack.stats
            # Frames the kernel could not queue towards unik (its ACKs, when unik did not read).
            counter = f"/sys/class/net/{ifname}/statistics/tx_dropped"
            dropped = subprocess.run(["ip", "netns", "exec", ns, "cat", counter], capture_output=True, text=True,
                                     check=False).stdout.strip()
            return {"times": times, "rto": stats["tcp.rto"], "tlp_probes": stats["tcp.tlp_probes"],
                    "tlp_spurious": stats["tcp.tlp_spurious"], "tlp_recoveries": stats["tcp.tlp_recoveries"],
                    "rack_lost": stats["tcp.rack_lost"], "rack_recoveries": stats["tcp.rack_recoveries"],
                    "fast_retransmits": stats["tcp.fast_retransmits"], "kernel_dropped": dropped or "?"}
        finally:
            await stack.disconnect()
    finally:
        await network.disconnect()
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    args = parser.parse_args()
    why = tap_unavailable()
    if why:
        print(f"bench/tcp_tail.py: skipped: {why}")
        return 0
    from unik_tcpip.tcp import TcpConfig

    configurations = {
        "defaults (RACK, TLP, min RTO 0.2 s, bursts of 64)": TcpConfig(tso=False),
        "no RACK (TLP, min RTO 0.2 s, bursts of 64)": TcpConfig(tso=False, rack=False),
        "before (no TLP, min RTO 1 s, unbounded bursts)": TcpConfig(tso=False, tlp=False, min_rto_ns=10**9,
                                                                    max_burst=1 << 30),
    }
    results: dict[str, Any] = {}
    for mtu in (1500, 576):
        for name, config in configurations.items():
            r = asyncio.run(one_configuration(mtu, args.tries, config))
            times = r["times"]
            slow = sum(t > 0.9 for t in times)
            print(f"MTU {mtu:4}, {name}: median {statistics.median(times):.3f} s, max {max(times):.3f} s, "
                  f"{slow} of {len(times)} over 0.9 s; RTOs {r['rto']}, probes {r['tlp_probes']} "
                  f"({r['tlp_spurious']} answered by a D-SACK, {r['tlp_recoveries']} repairing a loss), "
                  f"RACK: {r['rack_lost']} segments lost in {r['rack_recoveries']} recoveries; "
                  f"frames the TAP dropped {r['kernel_dropped']}")
            results[f"mtu{mtu} {name}"] = {
                "median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4),
                "over_0_9_s": slow, "tries": len(times), **{k: v for k, v in r.items() if k != "times"}}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "tcp_tail.json"
    path.write_text(json.dumps({"runs": results, "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                                "machine": machine(), "size_bytes": SIZE}, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
