"""VM snapshots: one saved per session, restored side by side; what must differ between instances does.

The application reports, per request, what a snapshot would share if nothing renewed it:
its Random device's first bytes, the ISN hash of a fixed connection key (so the TCP
secret, not the clock or the ports), OpenSSL's generator (TLS randoms and key shares),
the wall and monotonic clocks, and what its FAT disk holds.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from example_support import write_app
from host_tools import missing, needs
from vm_support import UNIK, build_for, unik

pytestmark = pytest.mark.slow

APP = '''\
"""Serves, per request, what two instances of one snapshot must not share."""

import asyncio
import json
import ssl
import time

from unik import lifecycle
from unik.devices import KVRO, Console, FileSystem, Random, Stack


async def _read(files: FileSystem, path: str) -> str:
    try:
        f = await files.open(path, "rb")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"missing: {exc}"
    data = await f.read()
    await f.close()
    return data.decode()


async def start(stack: Stack, random: Random, files: FileSystem, certs: KVRO, console: Console, *,
                port: int = 8080, tls_port: int = 8443) -> None:
    for name in ("cert.pem", "key.pem"):
        with open(f"/tmp/{name}", "wb") as out:
            out.write(await certs.get(name))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain("/tmp/cert.pem", "/tmp/key.pem")
    f = await files.open("before.txt", "wb")  # not flushed: the snapshot must write it back
    await f.write(b"written before the snapshot")
    await f.close()
    ssl.RAND_bytes(16)  # OpenSSL's generator instantiated in the snapshot's memory
    ready_mono = time.monotonic_ns()

    async def resumed() -> None:
        console.log(f"resumed {lifecycle.resumed().generation} on {stack.ipv4.address}")

    lifecycle.subscribe(lifecycle.RESUMED, resumed)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\\r\\n\\r\\n")
        tcp = stack.tcp  # type: ignore[attr-defined]
        key = (bytes([10, 0, 0, 2]), 8080, bytes([10, 0, 0, 1]), 40000)
        report = {
            "random": random.generate(16).hex(),
            "isn_hash": (tcp.isn(key) - tcp.timers.now_ns() // 4000) & 0xFFFFFFFF,
            "openssl": ssl.RAND_bytes(16).hex(),
            "wall_ns": time.time_ns(), "mono_ns": time.monotonic_ns(), "ready_mono_ns": ready_mono,
            "generation": lifecycle.resumed().generation, "mac": stack.network.mac.hex(":"),
            "files": sorted(await files.listdir("/")), "host": await _read(files, "host.txt"),
        }
        body = json.dumps(report).encode()
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % len(body) + body)
        await writer.drain()
        writer.close()

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello over TLS\\n")
        await writer.drain()
        writer.close()

    await asyncio.start_server(hello, port=tls_port, ssl=tls)  # a handshake's random and key share: OpenSSL's
    server = await stack.tcp.start_server(handle, port)
    console.log(f"serving on {stack.ipv4.address}:{port}")
    await server.serve_forever()
'''

DEVICES = '''
[tool.unik.devices.files]
kind = "fs"

[tool.unik.devices.certs]
kind = "kv_ro"
source = "certs"

[tool.unik.devices.storage]
kind = "block"
'''
#: Restoring under TCG with other tests running: QEMU's start, the stream read, DHCP.
RESTORE_TIMEOUT_S = 120.0


@pytest.fixture(scope="session")
def snapshot_app(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reporting application built for virtio, its FAT disk, and a snapshot saved on QEMU's user network."""
    why = missing("mkfs.fat", "mcopy", "mtype", "openssl")
    if why:
        pytest.skip(why)
    root = write_app(tmp_path_factory.mktemp("snapshot"), "snapper", APP)
    with open(root / "pyproject.toml", "a") as f:
        f.write(DEVICES)
    (root / "certs").mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(root / "certs" / "key.pem"), "-out", str(root / "certs" / "cert.pem"), "-days", "2",
                    "-subj", "/CN=snapper"], check=True, capture_output=True)
    build_for("virtio", root)
    disk = root / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.fat", "-F", "16", str(disk)], check=True, capture_output=True)
    saved = unik("run", "--accel", "tcg", "--net", "service=user", "--block", f"storage={disk}", "--save-snapshot",
                 cwd=root)
    assert "snapshot saved in" in saved.stderr, saved.stderr
    return root


def _disk_copy(app: Path, dest: Path, host_text: str | None = None) -> Path:
    """A copy of the snapshot's disk (as saved), with ``host.txt`` written after the snapshot when given."""
    disk = dest / f"disk-{os.urandom(3).hex()}.img"
    shutil.copyfile(app / "disk.img", disk)
    if host_text is not None:
        src = dest / "host.txt"
        src.write_text(host_text)
        subprocess.run(["mcopy", "-o", "-i", str(disk), str(src), "::/host.txt"], check=True)
    return disk


class Instance:
    """A restored ``unik run`` in the background, its console read line by line."""

    def __init__(self, app: Path, *args: str, netns: str | None = None) -> None:
        cmd = [UNIK, "run", "--accel", "tcg", *args]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.started = time.time_ns()
        self.proc = subprocess.Popen(cmd, cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr or ()), daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.put(line)

    def wait_for(self, prefix: str, timeout: float = RESTORE_TIMEOUT_S) -> str:
        """The first console line starting with ``prefix``."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"no {prefix!r} line: console {seen}, stderr {''.join(self.stderr)}")

    def stop(self) -> None:
        """SIGTERM (the runner presses the power button), then kill."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, netns: str | None = None) -> dict[str, object]:
    cmd = ["curl", "-sS", "--max-time", "20", "--retry", "5", "--retry-connrefused", "--retry-delay", "1", url]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    report: dict[str, object] = json.loads(out)
    return report


def _restored_on_user_net(app: Path, disk: Path) -> tuple[Instance, int, int]:
    """A restored instance, the host ports of its HTTP and TLS servers."""
    port, tls_port = _free_port(), _free_port()
    inst = Instance(app, "--net", "service=user", "--publish", f"127.0.0.1:{port}:8080", "--publish",
                    f"127.0.0.1:{tls_port}:8443", "--block", f"storage={disk}")
    inst.wait_for("resumed 1 on 10.0.2.15")
    return inst, port, tls_port


def _server_random(port: int) -> str:
    """The ServerHello's random (hex) of a TLS handshake with 127.0.0.1:``port`` (openssl s_client -msg)."""
    for _ in range(10):
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-msg"], input="",
                             capture_output=True, text=True, timeout=60).stdout
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("<<<") and line.endswith("ServerHello"):
                tokens: list[str] = []
                for more in lines[i + 1:]:
                    if not more.startswith(" "):
                        break
                    tokens += more.split()
                return "".join(tokens[6:38])  # type (1), length (3), version (2), then 32 random bytes
        time.sleep(1)
    raise AssertionError(f"no ServerHello from port {port}")


def test_the_snapshot_holds_the_disk_writes_made_before_it(snapshot_app: Path) -> None:
    # The application wrote before.txt and never flushed: BEFORE_SNAPSHOT wrote it back.
    text = subprocess.run(["mtype", "-i", str(snapshot_app / "disk.img"), "::/before.txt"], capture_output=True,
                          text=True, check=True).stdout
    assert text == "written before the snapshot"
    manifest = json.loads((snapshot_app / "dist" / "snapper-virtio" / "snapshot" / "snapshot.json").read_text())
    assert manifest["binding"]["accel"] == "tcg" and manifest["binding"]["mem"] == "256M"
    assert manifest["state_bytes"] > 1 << 20


def test_two_restores_share_no_randomness_and_step_the_clock(snapshot_app: Path, tmp_path: Path) -> None:
    created = json.loads((snapshot_app / "dist" / "snapper-virtio" / "snapshot" / "snapshot.json").read_text())
    time.sleep(max(0.0, created["created"] + 3 - time.time()))  # the snapshot's clock is behind by 3 s at least
    instances = [_restored_on_user_net(snapshot_app, _disk_copy(snapshot_app, tmp_path)) for _ in range(2)]
    try:
        randoms = [_server_random(tls_port) for _, _, tls_port in instances]  # each one's first handshake
        reports = [(inst, _get(f"http://127.0.0.1:{port}/")) for inst, port, _ in instances]
    finally:
        for inst, _, _ in instances:
            inst.stop()
    (_, a), (_, b) = reports
    for inst, report in reports:
        assert report["generation"] == 1
        # Wall clock: stepped to the host's time on resume, not the snapshot's.
        assert inst.started - 1e9 <= int(report["wall_ns"]) <= time.time_ns() + 1e9, report  # type: ignore[call-overload]
        # Monotonic: on from where the snapshot left it, never backwards.
        assert int(report["mono_ns"]) > int(report["ready_mono_ns"])  # type: ignore[call-overload]
    assert a["random"] != b["random"]  # Fortuna reseeded on RESUMED
    assert a["isn_hash"] != b["isn_hash"]  # the ISN secret was drawn again
    assert a["openssl"] != b["openssl"]  # OpenSSL's generator (TLS randoms, key shares) reseeded
    assert len(randoms[0]) == 64 and randoms[0] != randoms[1]  # and so the TLS handshakes' randoms differ


def test_a_restored_instance_reads_the_disk_as_it_is_now(snapshot_app: Path, tmp_path: Path) -> None:
    disk = _disk_copy(snapshot_app, tmp_path, host_text="written on the host after the snapshot")
    inst, port, _ = _restored_on_user_net(snapshot_app, disk)
    try:
        report = _get(f"http://127.0.0.1:{port}/")
    finally:
        inst.stop()
    assert report["host"] == "written on the host after the snapshot"
    assert report["files"] == ["BEFORE.TXT", "HOST.TXT"] or {"before.txt", "host.txt"} <= {
        str(n).lower() for n in report["files"]}  # type: ignore[attr-defined]


def test_a_snapshot_that_does_not_match_the_run_is_refused(snapshot_app: Path) -> None:
    disk = str(snapshot_app / "disk.img")
    same = unik("run", "--accel", "tcg", "--net", "service=user", "--block", f"storage={disk}", "--dry-run",
                cwd=snapshot_app)
    assert "-incoming" in same.stdout and "does not match" not in same.stderr
    other = unik("run", "--accel", "tcg", "--net", "service=user", "--block", f"storage={disk}", "--dry-run",
                 "--", "--port", "8081", cwd=snapshot_app)
    assert "-incoming" not in other.stdout
    assert "does not match this run: the application's arguments and keys (" in other.stderr
    assert "Booting cold" in other.stderr
    more = unik("run", "--accel", "tcg", "--mem", "320M", "--net", "service=user", "--block", f"storage={disk}",
                "--dry-run", cwd=snapshot_app)
    assert "-incoming" not in more.stdout and "the memory (--mem) (256M in the snapshot, 320M now)" in more.stderr
    cold = unik("run", "--accel", "tcg", "--net", "service=user", "--block", f"storage={disk}", "--dry-run",
                "--no-snapshot", cwd=snapshot_app)
    assert "-incoming" not in cold.stdout and "does not match" not in cold.stderr


@pytest.fixture()
def two_taps() -> Iterator[str]:
    """A namespace with TAPs snapa (10.98.1.1/24) and snapb (10.98.2.1/24), dnsmasq serving both."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and TAP devices)")
    name = f"uksnap{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for tap, net in (("snapa", "10.98.1"), ("snapb", "10.98.2")):
            for cmd in (["tuntap", "add", "dev", tap, "mode", "tap"], ["addr", "add", f"{net}.1/24", "dev", tap],
                        ["link", "set", tap, "up"]):
                subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@needs("dnsmasq")
def test_two_instances_side_by_side_on_their_own_taps(snapshot_app: Path, two_taps: str, tmp_path: Path) -> None:
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", two_taps, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
         "--user=root", "--interface=snapa", "--interface=snapb", "--bind-interfaces",
         f"--pid-file={tmp_path}/pid", f"--dhcp-leasefile={tmp_path}/leases",
         "--dhcp-range=10.98.1.50,10.98.1.60,2m", "--dhcp-range=10.98.2.50,10.98.2.60,2m", "--log-dhcp"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    instances = []
    try:
        for tap in ("snapa", "snapb"):
            instances.append(Instance(snapshot_app, "--net", f"service={tap}", "--block",
                                      f"storage={_disk_copy(snapshot_app, tmp_path)}", netns=two_taps))
        lines = [inst.wait_for("resumed 1 on ") for inst in instances]
        addresses = [line.split()[-1] for line in lines]
        assert addresses[0].startswith("10.98.1.") and addresses[1].startswith("10.98.2."), lines
        reports = [_get(f"http://{address}:8080/", two_taps) for address in addresses]
    finally:
        for inst in instances:
            inst.stop()
        dnsmasq.terminate()
        log = dnsmasq.communicate(timeout=30)[0]
    macs = [str(r["mac"]) for r in reports]
    assert macs[0] != macs[1], reports  # each instance its own MAC (the first one's may be the snapshot's)
    for mac, address in zip(macs, addresses, strict=True):
        assert f"{address} {mac}" in log, log  # its lease went to its own MAC
    assert reports[0]["random"] != reports[1]["random"]


def test_a_detached_run_restores_too(snapshot_app: Path, tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    port = _free_port()
    name = unik("run", "-d", "--accel", "tcg", "--net", "service=user", "--publish", f"127.0.0.1:{port}:8080",
                "--block", f"storage={_disk_copy(snapshot_app, tmp_path)}", cwd=snapshot_app, env=env).stdout.strip()
    try:
        assert _get(f"http://127.0.0.1:{port}/")["generation"] == 1
        assert "restored from the snapshot" in unik("logs", name, cwd=snapshot_app, env=env).stdout
    finally:
        unik("stop", name, cwd=snapshot_app, env=env, check=False)


def test_an_application_that_never_serves_is_not_snapshotted(hello_app: Path) -> None:
    proc = unik("run", "--accel", "tcg", "--mem", "192M", "--save-snapshot", cwd=hello_app, check=False)
    assert proc.returncode != 0
    assert "saving the snapshot failed" in proc.stderr and "the application never served" in proc.stderr, proc.stderr
    assert not list((hello_app / "dist").glob("*/snapshot/snapshot.json"))
