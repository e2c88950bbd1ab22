"""The same application on every target: every example configured and built for every installed target,
and booted where the target can run here.

One test per target, so that its images are built once and shared by its boots (xdist spreads the
targets over workers).  Boots: on unix every example (the web ones on the host's sockets); on spt
every example (http and https in a namespace, on the TAP ``--net service=auto`` makes); on virtio hello, kv
(its FAT disk) and http (QEMU's user network, curled through a published port) under TCG (fetch: a
VM by name, tests/e2e/test_fetch_example.py); on xen
hello through QEMU's PVH loader (``--emulate``): its disks and NICs are Xen devices, which need a Xen
control domain (``make test-xen`` boots kv and http under a real Xen).
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import UNIK
from example_support import REPO, copy_example, missing_vm_tools
from host_tools import require
from served_support import curl_while_starting, fastapi_checks, serving, stop, wait_http
from unik.plugins import PluginManager

EXAMPLES = sorted(p.name for p in (REPO / "examples").iterdir() if (p / "pyproject.toml").is_file())
TARGETS = sorted(PluginManager().targets())
TIMEOUT = 300.0

#: Keys an example needs at configure time on a target (the rest are the example's own defaults).
CONFIGURE: dict[tuple[str, str], list[str]] = {
    ("http", "unix"): ["--net=socket", "--ipv4=127.0.0.1/8"],
    ("https", "unix"): ["--net=socket", "--ipv4=127.0.0.1/8"],
    ("http", "virtio"): ["--net", "service=user"],
    ("https", "virtio"): ["--net", "service=user"],
}


def unik(app: Path, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([UNIK, *args], cwd=app, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{app.name}: unik {' '.join(args)} exited {proc.returncode}:\n" \
                                 f"{proc.stdout}\n{proc.stderr}"
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_curl(app: Path, url: str, *run_args: str) -> str:
    """``unik run`` until the application says it serves, then curl ``url`` (bounded retries); the page."""
    with serving([UNIK, "run", *run_args], app, TIMEOUT, what=app.name) as (_guest, console):
        page = curl_while_starting(url, "-k")
        assert page.returncode == 0, page.stderr + "".join(console)
        return page.stdout


# -- how each example is booted: (app, target, run args for the target) -> None ----------------

Boot = Callable[[Path, str, list[str]], None]


def boot_hello(app: Path, target: str, args: list[str]) -> None:
    run = unik(app, "run", "-t", target, *args, "--count", "2", "--greeting", "bonjour")
    assert run.stdout.splitlines()[-2:] == ["bonjour", "bonjour"], run.stdout
    assert f"unik: running hello on {target} (configured " in run.stderr, run.stderr


def boot_kv(app: Path, target: str, args: list[str]) -> None:
    disk = app / "disk.img"  # the file [tool.unik.devices.storage] names, relative to where it runs
    disk.unlink(missing_ok=True)
    with disk.open("wb") as f:
        f.truncate(8 << 20)
    unik(app, "run", "-t", target, *args, "--key", "colour", "--value", "blue")
    out = unik(app, "run", "-t", target, *args).stdout
    assert "boot #2" in out and "colour = blue" in out, out


def boot_web(app: Path, target: str, args: list[str]) -> None:
    require("curl")
    scheme = "https" if app.name == "https" else "http"
    guest_port = 8443 if scheme == "https" else 8080
    port = free_port()
    if target == "virtio":
        args = [*args, "--publish", f"127.0.0.1:{port}:{guest_port}"]
    else:
        args = [*args, "--port", str(port)]
    page = serve_and_curl(app, f"{scheme}://127.0.0.1:{port}/", "-t", target, *args)
    assert "<h1>" in page, page


def boot_web_on_a_new_tap(app: Path, target: str, args: list[str]) -> None:
    """In a namespace of its own, on a TAP ``--net service=auto`` makes: it serves, and answers ping."""
    from unik.testing import network_namespace

    prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    run = [UNIK, "run", "-t", target, *args, "--net", "service=auto", f"--ipv4={prefix}.2/24"]
    with network_namespace("unik-every") as netns, serving(run, app, TIMEOUT, netns, what=app.name) as (_, console):
        ping = subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "2", "-i", "0.2", "-W", "2",
                               f"{prefix}.2"], capture_output=True, text=True, timeout=TIMEOUT)
        assert ping.returncode == 0, ping.stdout + ping.stderr + "".join(console)


def prepare_fetch(app: Path) -> None:
    """A certificate for localhost in ``certs/``, trusted by the example (baked as ``ca.pem``)."""
    unik(app, "tls", "selfsigned", "-o", "certs", "-n", "localhost")
    (app / "ca.pem").write_bytes((app / "certs" / "cert.pem").read_bytes())
    toml = app / "pyproject.toml"
    toml.write_text(toml.read_text().replace('# ca = "ca.pem"', 'ca = "ca.pem"'))


def boot_fetch(app: Path, target: str, args: list[str]) -> None:
    """Fetch https://localhost:PORT/ from a TLS server in this process; the body's digest printed."""
    import hashlib
    import http.server
    import ssl
    import threading

    body = b"<h1>fetched</h1>\n" * 100

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(app / "certs" / "cert.pem", app / "certs" / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://localhost:{server.server_address[1]}/"
        out = unik(app, "run", "-t", target, *args, f"--url={url}").stdout
        assert f"{len(body)} bytes sha256={hashlib.sha256(body).hexdigest()}" in out, out
    finally:
        server.shutdown()
        server.server_close()


def boot_fastapi(app: Path, target: str, args: list[str]) -> None:
    """examples/fastapi on the host's sockets ([tool.unik.targets.unix]): JSON, a pydantic body, a background task."""
    require("curl")
    port = free_port()
    guest = subprocess.Popen([UNIK, "run", "-t", target, *args, "--port", str(port)], cwd=app,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/", TIMEOUT, alive=lambda: guest.poll() is None)
        fastapi_checks(f"http://127.0.0.1:{port}")
    finally:
        stop(guest)


BOOTS: dict[str, Boot] = {"hello": boot_hello, "kv": boot_kv, "http": boot_web, "https": boot_web,
                          "fetch": boot_fetch, "fastapi": boot_fastapi}
#: What a target refuses to configure or build, with the words of its refusal.
#: (hvt serves ASGI applications since _ssl is built in; FastAPI's pydantic-core and
#: uvicorn's httptools come as shared objects without C sources, which hvt cannot link.)
REFUSED = {("fastapi", "hvt"): "hvt links extension modules into CPython from their C sources, and these come "
                               "without one (no dynamic loader can load them): httptools"}


def boots_here(target: str) -> tuple[dict[str, list[str]], str]:
    """The examples ``target`` boots here with their run arguments, and why the others are not booted."""
    if target == "unix":
        return {e: [] for e in EXAMPLES}, ""
    if target == "spt":
        from solo5_support import missing  # type: ignore[import-not-found]

        why = missing()
        if why:
            return {}, why
        return {"hello": [], "kv": [], "http": [], "https": []}, ""
    if target == "hvt":
        from hvt_support import kvm_missing  # type: ignore[import-not-found]

        why = kvm_missing()
        if why:
            return {}, why
        # http and https need a TAP: tests/hvt/test_hvt_http.py and test_hvt_https.py run them on one
        return {"hello": [], "kv": []}, "http and https need a TAP (tests/hvt runs them on one)"
    why = missing_vm_tools()
    if why:
        return {}, why
    if target == "virtio":
        return ({"hello": ["--accel", "tcg"], "kv": ["--accel", "tcg"], "http": ["--accel", "tcg"]},
                "https is built only: one web example under TCG is enough here")
    if target == "xen":
        return {"hello": ["--emulate"]}, "Xen's disks and NICs need a Xen control domain (make test-xen)"
    return {}, f"this test does not know how to boot on {target}"


@pytest.mark.slow
@pytest.mark.timeout(1200)  # cold caches: a VM image takes a minute to build here under load
@pytest.mark.parametrize("target", TARGETS)
def test_every_example_configures_builds_and_boots(target: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "solo5"))
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "hvt"))
    missing_boot = sorted(set(EXAMPLES) - set(BOOTS))
    assert not missing_boot, f"tell this test how to boot {missing_boot} (BOOTS)"
    boots, why_not = boots_here(target)
    for example in EXAMPLES:
        app = copy_example(example, tmp_path)
        if example == "https":
            unik(app, "tls", "selfsigned", "-o", "certs")
        if example == "fetch":
            prepare_fetch(app)
        if (example, target) in REFUSED:
            # configure refuses when pip has installed the dependencies already (an earlier
            # target's build did), else the build does, before linking
            refused = subprocess.run([UNIK, "configure", "-t", target, *CONFIGURE.get((example, target), [])],
                                     cwd=app, capture_output=True, text=True, timeout=TIMEOUT)
            if refused.returncode == 0:
                refused = subprocess.run([UNIK, "build"], cwd=app, capture_output=True, text=True, timeout=TIMEOUT)
            assert refused.returncode != 0 and REFUSED[example, target] in refused.stderr, refused.stderr
            continue
        unik(app, "configure", "-t", target, *CONFIGURE.get((example, target), []))
        build = unik(app, "build")
        name = re.search(r'^name = "([^"]+)"', (app / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
        assert f"unik: building {name} for {target} (configured " in build.stderr, build.stderr
        if example in boots:
            boot = boot_web_on_a_new_tap if target == "spt" and example in ("http", "https") else BOOTS[example]
            boot(app, target, boots[example])
    not_booted = sorted(set(EXAMPLES) - set(boots) - {e for e, t in REFUSED if t == target})
    if not_booted:
        print(f"{target}: built but not booted here: {', '.join(not_booted)}: {why_not}")
