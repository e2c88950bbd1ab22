"""The examples on the unix target, through the real `unik` command."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from e2e_support import UNIK, Unik
from example_support import copy_example
from host_tools import require


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_hello_prints_four_lines_and_exits_zero(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("hello", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    unik("build", cwd=app)
    start = time.monotonic()
    run = unik("run", cwd=app)
    elapsed = time.monotonic() - start
    assert run.stdout == "hello\nhello\nhello\nhello\n"
    assert run.returncode == 0
    assert elapsed >= 3.0  # three one-second sleeps between the four lines
    # The artifact runs on its own too, with keys as options.
    pyz = app / "dist" / "hello-unix" / "hello.pyz"
    out = subprocess.run([str(pyz), "--count", "2", "--greeting=hej"], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "hej\nhej\n")


def test_failing_application_gives_nonzero_status(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("hello", tmp_path)
    init = app / "src" / "hello" / "__init__.py"
    init.write_text(init.read_text() + "\n\nasync def fail(console: Console) -> int:\n    console.log('failing')\n"
                    "    raise RuntimeError('deliberate failure')\n")
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('main = "hello:start"', 'main = "hello:fail"'))
    unik("configure", "-t", "unix", cwd=app)
    run = unik("run", cwd=app, check=False)  # run builds the missing artifact itself
    assert run.returncode == 1
    assert "failing" in run.stdout
    assert "RuntimeError: deliberate failure" in run.stderr


def test_http_on_the_socket_stack_answers_curl(tmp_path: Path, unik: Unik) -> None:
    require("curl")
    curl = shutil.which("curl")
    assert curl is not None
    app = copy_example("http", tmp_path)
    port = free_port()
    unik("configure", "-t", "unix", "--net=socket", "--ipv4=127.0.0.1/8", f"--port={port}", cwd=app)
    unik("build", cwd=app)
    server = subprocess.Popen([UNIK, "run"], cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # bounded: the server prints it first, or dies
        assert line == f"serving on 127.0.0.1:{port}\n", server.stderr.read() if server.stderr else ""
        page = subprocess.run([curl, "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/"],
                              capture_output=True, text=True, check=True)
        assert "<h1>Hello from unik</h1>" in page.stdout
        missing = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                  f"http://127.0.0.1:{port}/missing"], capture_output=True, text=True)
        assert missing.stdout == "404"
        # Keep-alive: two requests on one connection.
        both = subprocess.run([curl, "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/",
                               f"http://127.0.0.1:{port}/index.html", "-w", "%{num_connects}\n"],
                              capture_output=True, text=True, check=True)
        assert both.stdout.count("Hello from unik") == 2
        assert both.stdout.strip().endswith("0")  # the second request reused the connection
    finally:
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=30)
    assert status == 128 + signal.SIGTERM  # the runner forwards the signal; devices are released


def test_new_configure_build_run(tmp_path: Path, unik: Unik) -> None:
    created = unik("new", "my-app", cwd=tmp_path)
    assert "created" in created.stdout
    app = tmp_path / "my-app"
    assert (app / "src" / "my_app" / "__init__.py").exists()
    unik("configure", "-t", "unix", "--greeting=salut", cwd=app)
    assert unik("run", cwd=app).stdout == "salut\n" * 4
    assert unik("run", "--greeting=hej", cwd=app).stdout == "hej\n" * 4
    again = unik("new", "my-app", cwd=tmp_path, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_describe_query_plugins_targets(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    dot = unik("describe", "--dot", cwd=app).stdout
    assert '"http_app:start" -> "htdocs" [label="htdocs"];' in dot
    assert "unix.socket-stack" in dot
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=True)
        assert "<svg" in svg.stdout
    plan = json.loads(unik("query", "plan", cwd=app).stdout)
    assert [d["name"] for d in plan["devices"]] == ["stack", "htdocs", "console"]
    assert unik("query", "packages", cwd=app).stdout.split() == ["unik-core", "unik-target-unix"]
    files = unik("query", "files", cwd=app).stdout
    assert "assets/htdocs/index.html\t" in files
    plugins = {p["name"]: p for p in json.loads(unik("plugins", cwd=tmp_path).stdout)}
    assert plugins["unix"]["distribution"] == "unik-target-unix"
    assert "unik_register_targets" in plugins["unix"]["hooks"]
    targets = {t["name"]: t for t in json.loads(unik("targets", "--json", cwd=tmp_path).stdout)}
    assert "unix.socket-stack" in targets["unix"]["provides"]["stack"]


def test_errors_are_messages_not_tracebacks(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    # Without unik-lib-tcpip, unik's own stack on a TAP has no provider: say what to install.
    out = unik("configure", "-t", "unix", "--net", "service=tap0", cwd=app, check=False,
               env={"UNIK_DISABLE_PLUGINS": "tcpip"})
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert ("unik: error: device 'stack' (kind 'stack', needed by application 'http') has no provider for "
            "target 'unix': the installed providers (unix.socket-stack) do not apply with the keys given; "
            "or install `pip install unik-lib-tcpip`") in out.stderr
    out = unik("configure", "-t", "xen", cwd=app, check=False, env={"UNIK_DISABLE_PLUGINS": "xen"})
    assert out.returncode == 1 and "pip install unik-target-xen" in out.stderr
    out = unik("build", cwd=tmp_path, check=False)
    assert out.returncode == 1 and "run `unik new NAME`" in out.stderr
    out = unik("configure", "-t", "unix", "--net=carrier-pigeon", cwd=app, check=False)
    assert out.returncode == 1 and "--net: 'carrier-pigeon' is neither `socket`, `tap` nor DEVICE=TAP" in out.stderr


def test_stale_configuration_is_redone_by_build(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("hello", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.unik.targets.unix]\ngreeting = "changed"\n')
    build = unik("build", cwd=app)
    assert "pyproject.toml changed since configure: configuring unix again" in build.stderr
    assert unik("run", "--count=1", cwd=app).stdout == "changed\n"


def test_artifact_is_reproducible(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    unik("build", cwd=app)
    first = (app / "dist" / "http-unix" / "http.pyz").read_bytes()
    (app / "htdocs" / "index.html").touch()
    unik("build", cwd=app)
    assert (app / "dist" / "http-unix" / "http.pyz").read_bytes() == first


def test_query_main_and_clean(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("hello", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    main = unik("query", "main", cwd=app).stdout
    assert main == (app / "_build" / "unix" / "main.py").read_text()
    assert "sleep = await devices.connect('sleep', PosixSleep)" in main
    unik("build", cwd=app)
    cleaned = unik("clean", cwd=app)
    assert not (app / "_build").exists() and not (app / "dist").exists()
    assert f"removed {app / '_build'}" in cleaned.stderr
    out = unik("describe", cwd=app, check=False)
    assert out.returncode == 1 and "run `unik configure -t TARGET` first" in out.stderr


def test_a_failed_configure_does_not_leave_the_old_target_silently_active(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("hello", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    # A mistake only the virtio configuration has: configure -t virtio fails.
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.unik.targets.virtio]\ninitramfs_compression = "lzma"\n')
    unik("configure", "-t", "unix", cwd=app)
    failed = unik("configure", "-t", "virtio", cwd=app, check=False)
    assert failed.returncode == 1 and "initramfs_compression" in failed.stderr, failed.stderr
    assert re.search(r"unik: note: the configuration for unix \(made \d+ s ago\) is still the current one: "
                     r"`unik build` and `unik run` use it until a configure succeeds", failed.stderr), failed.stderr
    build = unik("build", cwd=app)
    warning = "unik: warning: the last `unik configure -t virtio` failed: using the unix configuration made "
    assert warning in build.stderr and "unik: building hello for unix (configured " in build.stderr
    run = unik("run", "--count", "1", cwd=app)
    assert warning in run.stderr and "unik: running hello on unix (configured " in run.stderr
    assert run.stdout == "hello\n"
    unik("configure", "-t", "unix", cwd=app)
    assert "warning" not in unik("build", cwd=app).stderr


def test_run_net_socket_on_a_tap_build_uses_sockets_and_keeps_the_configuration(tmp_path: Path, unik: Unik) -> None:
    require("curl")
    app = copy_example("http", tmp_path)
    # configured for unik's stack on a TAP (no TAP needed until it runs there)
    unik("configure", "-t", "unix", "--net", "service=uknever0", "--ipv4=10.9.8.2/24", cwd=app)
    saved = (app / "_build" / "unix" / "plan.json").read_text()
    assert '"tcpip.stack"' in saved
    port = free_port()
    server = subprocess.Popen([UNIK, "run", "--net=socket", "--ipv4=127.0.0.1/8", "--port", str(port)], cwd=app,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stderr is not None
        line = server.stdout.readline()  # bounded: the server prints it first, or dies
        assert line == f"serving on 127.0.0.1:{port}\n", server.stderr.read()
        page = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/"],
                              capture_output=True, text=True, check=True)
        assert "<h1>Hello from unik</h1>" in page.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    err = server.stderr.read()
    assert ("unik: these options change the device graph: configuring and building for this run in _build/unix/run "
            "(the saved configuration is unchanged)") in err, err
    assert (app / "_build" / "unix" / "plan.json").read_text() == saved  # unik run rewrote nothing
    assert '"unix.socket-stack"' in (app / "_build" / "unix" / "run" / "plan.json").read_text()
