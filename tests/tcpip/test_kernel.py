"""unik's stack against the Linux kernel over a real TAP, in a namespace the test creates.

The TAP's kernel side is moved into a fresh network namespace with address .1/24; unik's
stack owns the other side as .2/24.  Needs root, /dev/net/tun and iproute2; each tool
(ping, curl, socat) skips its own test when missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from host_tools import needs
from kernel_support import (
    KERNEL,
    REPO,
    Namespace,
    Namespace6,
    bulk_both_ways,
    fetch_from_http_server,
    http_app,
    run,
    serve_http,
    sh,
    stack_on,
    udp_echo_with_socat,
    unik_stack,
)
from unik_tcpip import checksum
from unik_tcpip.stack import TcpipStack

pytestmark = KERNEL


@needs("ping")
def test_ping_both_ways(netns: Namespace) -> None:
    async def main() -> None:
        async with unik_stack(netns) as stack:
            status, out, err = await netns.run("ping", "-c", "3", "-i", "0.2", "-W", "5", netns.unik)
            assert status == 0, (out + err).decode()
            assert b"3 received" in out
            rtts = [await stack.ping(netns.host, seq=i, timeout=5) for i in range(3)]
            assert all(r > 0 for r in rtts)
            assert stack.stats["icmp.echo_requests"] == 3
    run(main())


@needs("curl")
@pytest.mark.parametrize(("pure", "offload"), [(False, False), (True, False), (False, True)],
                         ids=["c-checksum", "pure-checksum", "offloads"])
def test_curl_to_examples_http_on_unik(netns: Namespace, tmp_path: Path, pure: bool, offload: bool) -> None:
    http_app()  # skips without examples/http
    body = os.urandom(3 << 20)
    files = {"index.html": b"<h1>unik</h1>\n", "big.bin": body}

    async def main() -> None:
        async with unik_stack(netns, offload=offload) as stack:
            app = serve_http(stack, tmp_path, files)
            await asyncio.sleep(0.1)
            status, out, err = await netns.run("curl", "-sS", "--max-time", "20", f"http://{netns.unik}:8080/")
            assert status == 0, err.decode()
            assert out == files["index.html"]
            status, out, err = await netns.run(
                "curl", "-sS", "--max-time", "60", f"http://{netns.unik}:8080/big.bin",
                f"http://{netns.unik}:8080/big.bin")  # two requests on one keep-alive connection
            assert status == 0, err.decode()
            assert hashlib.sha256(out).digest() == hashlib.sha256(body * 2).digest()
            assert stack.stats["tcp.passive_opens"] == 2
            app.cancel()
    checksum.use_pure(pure)
    try:
        run(main())
    finally:
        checksum.use_pure(False)


@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offloads"])
def test_unik_client_fetches_from_python_http_server(either_ns: Namespace, tmp_path: Path, offload: bool) -> None:
    """Over IPv4, and over IPv6 on the dual stack."""
    body = os.urandom(5 << 20)

    async def main() -> None:
        async with stack_on(either_ns, offload=offload) as (stack, host):
            await fetch_from_http_server(stack, either_ns, host, tmp_path, body)
    run(main())


@needs("socat")
def test_udp_echo_with_socat(either_ns: Namespace) -> None:
    """unik echoes, socat in the namespace sends and prints the answer; then the reverse (both families)."""
    async def main() -> None:
        async with stack_on(either_ns) as (stack, host):
            unik = either_ns.unik6 if isinstance(either_ns, Namespace6) else either_ns.unik
            await udp_echo_with_socat(stack, either_ns, unik, host)
    run(main())


def _has_netem(ns: Namespace) -> bool:
    if not shutil.which("tc"):
        return False
    probe = sh("ip", "netns", "exec", ns.name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms",
               check=False)
    sh("ip", "netns", "exec", ns.name, "tc", "qdisc", "del", "dev", "lo", "root", check=False)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offloads"])
def test_50mb_both_ways_with_loss_and_reordering(netns: Namespace, offload: bool) -> None:
    """50 MiB each way, checksummed, with loss and reordering: `tc netem` on the kernel side
    where the kernel has sch_netem, else a lossy, reordering wrapper around unik's TAP.

    The CI machine's kernel (6.18, a Firecracker guest) is built without
    CONFIG_NET_SCH_NETEM and has no loadable modules (no /lib/modules, no modprobe):
    `tc qdisc add ... netem` answers "Specified qdisc kind is unknown", so there the
    wrapper (LossyNetwork) impairs the frames instead."""
    size = 50 << 20
    netem = _has_netem(netns)

    async def main() -> None:
        async with unik_stack(netns, lossy=None if netem else (0.005, 0.05), offload=offload) as stack:
            if netem:
                status, _out, err = await netns.run("tc", "qdisc", "add", "dev", netns.ifname, "root", "netem",
                                                    "delay", "1ms", "loss", "0.5%", "reorder", "10%", "50%")
                assert status == 0, err.decode()
            up = await bulk_both_ways(stack, netns, netns.host, size)
            assert up.retransmits > 0  # the loss was repaired
            assert stack.stats["tcp.out_of_order"] > 0  # and the reordering absorbed
    run(main(), timeout=240)


@needs("dnsmasq")
def test_dhcp_lease_and_renewal_from_dnsmasq(netns: Namespace, tmp_path: Path) -> None:
    from unik.posix import GetrandomRandom, PosixMonotonicClock, PosixSleep
    from unik_fdio.tap import TapNetwork

    async def main() -> None:
        network = await TapNetwork.connect("service", netns.ifname, create=True)
        try:
            netns.adopt()
            async with netns.background(
                    "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
                    f"--interface={netns.ifname}", "--bind-interfaces", f"--pid-file={tmp_path}/pid",
                    f"--dhcp-leasefile={tmp_path}/leases", f"--dhcp-range={netns.prefix}.50,{netns.prefix}.60,2m",
                    f"--dhcp-option=option:router,{netns.host}",
                    "--dhcp-option=option:T1,3", "--dhcp-option=option:T2,100") as dnsmasq:
                stack = await TcpipStack.connect(network, PosixMonotonicClock(), PosixSleep(), GetrandomRandom(),
                                                 dhcp_timeout=30)
                try:
                    assert stack.dhcp is not None and stack.dhcp.lease is not None
                    last = int(stack.ipv4.address.rsplit(".", 1)[1])
                    assert stack.ipv4.address.startswith(netns.prefix + ".") and 50 <= last <= 60
                    assert stack.ipv4.prefix == 24 and stack.ipv4.gateway == netns.host
                    assert stack.dhcp.lease.lease_s == 120 and stack.dhcp.lease.t1_s == 3
                    assert await stack.ping(netns.host, timeout=5) > 0
                    for _ in range(100):  # T1 is 3 s: a renewal follows within a few seconds
                        if stack.dhcp.renewals:
                            break
                        await asyncio.sleep(0.1)
                    assert stack.dhcp.renewals >= 1, stack.stats
                    assert stack.ipv4.address.endswith(f".{last}")
                    leases = (tmp_path / "leases").read_text()
                    assert stack.ipv4.address in leases and network.mac.hex(":") in leases
                finally:
                    await stack.disconnect()
                assert dnsmasq.returncode is None, "dnsmasq exited early"
        finally:
            await network.disconnect()
    run(main())


@needs("curl")
@pytest.mark.slow
def test_unik_run_examples_http_on_a_tap(netns: Namespace, tmp_path: Path) -> None:
    """The whole path: `unik configure --net service=TAP --ipv4=...`, `unik build`, `unik run`, curl."""
    example = REPO / "examples" / "http"
    if not (example / "pyproject.toml").exists():
        pytest.skip("needs examples/http")
    unik = Path(sys.executable).parent / "unik"
    app = tmp_path / "http"
    shutil.copytree(example, app, ignore=shutil.ignore_patterns("_build", "dist"))
    for step in (["configure", "-t", "unix", "--net", f"service={netns.ifname}", f"--ipv4={netns.unik}/24",
                  f"--ipv4-gateway={netns.host}"], ["build"]):
        done = subprocess.run([str(unik), *step], cwd=app, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "unik_tcpip.stack import TcpipStack" in (app / "_build" / "unix" / "main.py").read_text()

    # unik run refuses a TAP that does not exist: make it here, moved into the namespace once open
    sh("ip", "tuntap", "add", netns.ifname, "mode", "tap")

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(str(unik), "run", cwd=app, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        try:
            lines = []
            for _ in range(5):  # unik run says what it runs first ("unik: running http on unix ...")
                lines.append(await asyncio.wait_for(proc.stdout.readline(), 60))
                if b"serving on" in lines[-1] or not lines[-1]:
                    break
            assert f"serving on {netns.unik}:8080".encode() in lines[-1], lines
            netns.adopt()
            status, out, err = await netns.run("curl", "-sS", "--retry", "3", "--retry-connrefused",
                                               "--max-time", "20", f"http://{netns.unik}:8080/")
            assert status == 0, err.decode()
            assert out == (example / "htdocs" / "index.html").read_bytes()
        finally:
            if proc.returncode is None:
                proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
    try:
        run(main())
    finally:
        sh("ip", "link", "del", netns.ifname, check=False)  # still here only if it never reached the namespace


HOSTILE = r"""
import random, socket, struct, sys

ifname, dst_mac, src_ip, dst_ip = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3], sys.argv[4]
src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
rng = random.Random(7)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto, payload, ihl=5, fix=True, ident=None):
    ident = rng.randrange(65536) if ident is None else ident
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(payload), ident, 0, 64,
                              proto, 0, src, dst))
    if fix:
        h[10:12] = struct.pack("!H", csum(bytes(h)))
    return bytes(h) + payload


def tcp(sport, dport, flags, options=b"", offset=None, payload=b""):
    off = offset if offset is not None else (20 + len(options)) // 4
    seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, rng.randrange(2**32), 0, off << 4, flags, 65535, 0, 0))
    seg += options + payload
    seg[16:18] = struct.pack("!H", csum(src + dst + struct.pack("!HH", 6, len(seg)) + bytes(seg)))
    return bytes(seg)


raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((ifname, 0))
src_mac = raw.getsockname()[4]
sent = 0
for i in range(3000):
    kind = i % 9
    if kind == 0:
        frame = dst_mac + src_mac + b"\x08\x00" + rng.randbytes(rng.randrange(0, 80))
    elif kind == 1:
        frame = dst_mac + src_mac + b"\x08\x00" + ipv4(6, b"")[:10]
    elif kind == 2:
        frame = dst_mac + src_mac + b"\x08\x00" + ipv4(17, rng.randbytes(30), fix=False)
    elif kind == 3:
        frame = dst_mac + src_mac + b"\x08\x00" + ipv4(6, rng.randbytes(8), ihl=15)
    elif kind == 4:
        frame = dst_mac + src_mac + b"\x08\x00" + ipv4(6, tcp(rng.randrange(1, 65536), 8080, 0x02, offset=15))
    elif kind == 5:
        frame = dst_mac + src_mac + b"\x08\x00" + ipv4(6, tcp(rng.randrange(1, 65536), 8080, 0x02,
                                                              options=bytes([2, 0, 0, 0])))
    elif kind == 6:
        udp = struct.pack("!HHHH", 1234, 53, 400, 0) + b"short"
        frame = dst_mac + src_mac + b"\x08\x00" + ipv4(17, udp)
    elif kind == 7:
        frame = dst_mac + src_mac + b"\x08\x06" + rng.randbytes(28)
    else:  # overlapping fragments
        h = bytearray(ipv4(17, rng.randbytes(64), ident=i // 90))  # same datagram, shifting offsets
        h[6:8] = struct.pack("!H", 0x2000 | rng.randrange(0, 4))
        h[10:12] = b"\0\0"
        h[10:12] = struct.pack("!H", csum(bytes(h[:20])))
        frame = dst_mac + src_mac + b"\x08\x00" + bytes(h)
    raw.send(frame)
    sent += 1
# A SYN flood from spoofed ports (the kernel answers unik's SYN-ACKs with RSTs).
syn = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for port in range(20000, 22000):
    syn.sendto(tcp(port, 8080, 0x02, options=bytes([2, 4, 5, 180])), (dst_ip, 0))
    sent += 1
print(sent)
"""


@needs("curl")
def test_hostile_traffic_is_counted_and_curl_still_works(netns: Namespace, tmp_path: Path) -> None:
    http_app()  # skips without examples/http

    async def main() -> None:
        async with unik_stack(netns) as stack:
            app = serve_http(stack, tmp_path, {"index.html": b"ok\n"})
            await asyncio.sleep(0.1)
            status, out, err = await netns.run(sys.executable, "-c", HOSTILE, netns.ifname,
                                               stack.iface.mac.hex(), netns.host, netns.unik)
            assert status == 0, err.decode()
            assert int(out) == 5000
            await asyncio.sleep(1)
            stats = stack.stats
            assert stats["rx.internal_error"] == 0
            for reason in ("ipv4.truncated", "ipv4.bad_checksum", "ipv4.bad_total_len", "tcp.bad_header_len",
                           "tcp.bad_option", "udp.bad_length", "ipv4.frag_overlap"):
                assert stats[reason] > 0, (reason, dict(stats))
            assert len(stack.tcp.connections) <= stack.tcp.config.syn_backlog
            status, out, err = await netns.run("curl", "-sS", "--max-time", "20", f"http://{netns.unik}:8080/")
            assert status == 0 and out == b"ok\n", err.decode()
            app.cancel()
    run(main())


DOWNLOADS = r"""
import hashlib, socket, sys
host, port, tries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(tries):
    s = socket.create_connection((host, port), timeout=30)
    chunks = []
    while data := s.recv(1 << 20):
        chunks.append(data)
    s.close()
    body = b"".join(chunks)
    print(len(body), hashlib.sha256(body).hexdigest(), flush=True)
"""


def test_downloads_at_mtu_576_without_offloads(netns: Namespace) -> None:
    """Issue 17's case: the kernel downloads 5 MiB from unik at MTU 576, offloads off, 3 times.

    unik's bursts are bounded, so the kernel's ACKs are read between them; a tail whose ACKs
    are lost anyway is repaired by a probe.  Every download arrives whole; the times, and
    how many exceed 0.9 s over many tries, are bench/tcp_tail.py's.
    """
    body = os.urandom(5 << 20)

    async def main() -> None:
        async with unik_stack(netns, mtu=576) as stack:
            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(body)
                await writer.drain()
                writer.close()

            await stack.tcp.start_server(serve, 9100)
            status, out, err = await netns.run(sys.executable, "-c", DOWNLOADS, netns.unik, "9100", "3")
            assert status == 0, err.decode()[-2000:]
            want = f"{len(body)} {hashlib.sha256(body).hexdigest()}"
            assert out.decode().split("\n")[:3] == [want] * 3
            assert stack.iface.mtu == 576 and stack.stats["tcp.timeouts_aborted"] == 0
    run(main(), timeout=120)
