"""A real Xen: Xen 4.17 and a Debian dom0 booted under QEMU (TCG); dom0 runs the emitted configurations.

One boot of Xen serves every test here (module fixture): in dom0, ``xl create -n`` on the
emitted ``hello.xl`` (xl's own parser and domain builder's checks, with a hypervisor),
then ``xl create -c`` on examples/hello as a PVH guest and as a PV guest, examples/kv
twice on a file-backed xvd disk (unik-lib-fat on blkfront: the second boot finds what the
first wrote), then examples/http as a PVH guest on bridge xenbr0 (unik's TCP/IP stack on
netfront through the AF_PACKET ring), asked for its page by dom0, examples/fastapi the same
way (uvicorn on unik's event loop: JSON, a pydantic-validated order, the background task's
record, then `xl shutdown`), and last `unik doctor -t
xen` and `unik run -t xen` themselves (this CPython, its standard library and unik's
distributions are in dom0's initramfs).  Assertions are on console output, not on xl's
status (``xl create -c`` returns 0 when a guest crashes).

Slow (about 2.5 minutes here: the builds, then 1.5 minutes of Xen), so `make test` leaves it out:
``make test-xen`` sets UNIK_TEST_XEN=1 and runs it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import xen_nested as nested
from example_support import copy_example
from xen_support import DOM0_PLUGINS, build, unik_for_dom0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.environ.get("UNIK_TEST_XEN") != "1",
                       reason="boots Xen under QEMU TCG (minutes): needs UNIK_TEST_XEN=1, which `make test-xen` sets"),
]

KV_CMDLINE = "console=hvc0 quiet panic=-1 unik_exit=poweroff ipv6.disable_ipv6=1 -- --key greeting --value hello"

#: examples/kv held open (--hold), then `xl shutdown -w`: Xen's shutdown request makes the guest's
#: kernel run /sbin/poweroff (the init), which stops the application; its devices disconnect.
KV_HOLD_CMDLINE = ("console=hvc0 quiet panic=-1 unik_exit=poweroff ipv6.disable_ipv6=1 "
                   "-- --key stopped --value gracefully --hold")
KV_STOP_SCRIPT = f"""\
cd /guest/kv && echo "UNIK-KV-STOP-CREATE" && xl create kv.xl 'cmdline="{KV_HOLD_CMDLINE}"'
i=0
while [ $i -lt 120 ] && ! grep -q 'holding the store open' /var/log/xen/console/guest-kv.log 2>/dev/null; do
    i=$((i + 1)); sleep 1
done
xl shutdown -w kv; echo "UNIK-KV-STOP-SHUTDOWN $?"
for i in $(seq 100); do [ "$(xl list | wc -l)" -le 2 ] && break; sleep 0.2; done
echo "UNIK-KV-STOP-CONSOLE"; cat /var/log/xen/console/guest-kv.log; echo "UNIK-KV-STOP-CONSOLE-END"
"""

HTTP_SCRIPT = """\
brctl addbr xenbr0 && ip addr add 10.0.0.1/24 dev xenbr0 && ip link set xenbr0 up
cd /guest/http && echo "UNIK-HTTP-CREATE" && xl create http.xl; echo "UNIK-HTTP-XL $?"
i=0
while [ $i -lt 90 ]; do
    if printf 'GET / HTTP/1.0\\r\\nHost: 10.0.0.2\\r\\n\\r\\n' | nc -w 5 10.0.0.2 8080 > /tmp/page 2>/dev/null \\
            && grep -q '^HTTP/1' /tmp/page; then
        echo "UNIK-HTTP-ANSWER after $i s"; cat /tmp/page; echo; break
    fi
    i=$((i + 1)); sleep 1
    [ $((i % 10)) -eq 0 ] && echo "UNIK-HTTP-WAITING $i"
done
echo "UNIK-HTTP-CONSOLE"; cat /var/log/xen/console/guest-http.log; echo "UNIK-HTTP-CONSOLE-END"
xl destroy http
"""


#: examples/fastapi (uvicorn, pydantic-core and httptools: C extensions) as a PVH guest on xenbr0, after
#: http: dom0's CPython asks for its JSON, posts a pydantic-validated order and reads the background
#: task's record (FASTAPI_CLIENT; busybox's nc leaves at the end of its input, before a slower server's
#: answer, and its wget crashes in this dom0), then `xl shutdown` stops it gracefully.
FASTAPI_CLIENT = """\
import time
import urllib.request

BASE = "http://10.0.0.3:8000"


def ask(path, body=None):
    request = urllib.request.Request(BASE + path, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as reply:
        return f"{reply.status} {reply.read().decode()}"


start = time.monotonic()
while True:
    try:
        answer = ask("/")
        break
    except OSError as exc:
        if time.monotonic() - start > 240:
            print(f"UNIK-FASTAPI-GAVE-UP {exc}")
            raise SystemExit(1)
        time.sleep(1)
print(f"UNIK-FASTAPI-ANSWER after {time.monotonic() - start:.0f} s: {answer}")
print("UNIK-FASTAPI-POST " + ask("/orders", b'{"name": "tea", "price": 2.5, "quantity": 2}'))
print("UNIK-FASTAPI-ORDERS " + ask("/orders"))
"""
FASTAPI_SCRIPT = """\
cd /guest/fastapi && echo "UNIK-FASTAPI-CREATE" && xl create fastapi-example.xl; echo "UNIK-FASTAPI-XL $?"
{python} /guest/fastapi/client.py; echo "UNIK-FASTAPI-CLIENT $?"
xl shutdown -w fastapi-example; echo "UNIK-FASTAPI-SHUTDOWN $?"
echo "UNIK-FASTAPI-CONSOLE"; cat /var/log/xen/console/guest-fastapi-example.log; echo "UNIK-FASTAPI-CONSOLE-END"
xl destroy fastapi-example 2>/dev/null
"""


@pytest.fixture(scope="module")
def xen_run(xen_host: nested.XenHost, tmp_path_factory: pytest.TempPathFactory) -> nested.NestedRun:
    work = tmp_path_factory.mktemp("nested")
    hello = build(copy_example("hello", work / "pvh"))
    hello_pv = build(copy_example("hello", work / "pv"), "--xen-type", "pv")
    http = build(copy_example("http", work / "http"), "--net", "service=xenbr0", "--ipv4", "10.0.0.2/24")
    kv = build(copy_example("kv", work / "kv"), "--block", "storage=/guest/kv/disk.img")
    fastapi = build(copy_example("fastapi", work / "fastapi"), "--net", "service=xenbr0", "--ipv4", "10.0.0.3/24")
    files = {f"/guest/hello/{p.name}": p for p in hello.iterdir()}
    files["/guest/hello-pv/hello.xl"] = hello_pv / "hello.xl"
    files["/guest/hello-pv/initramfs.cpio.zst"] = hello_pv / "initramfs.cpio.zst"
    files.update({f"/guest/http/{p.name}": p for p in http.iterdir()})
    files.update({f"/guest/kv/{p.name}": p for p in kv.iterdir() if p.name != "vmlinux"})
    files.update({f"/guest/fastapi/{p.name}": p for p in fastapi.iterdir() if p.name != "vmlinux"})
    (work / "fastapi-client.py").write_text(FASTAPI_CLIENT)
    files["/guest/fastapi/client.py"] = work / "fastapi-client.py"
    # `unik run -t xen` and `unik doctor -t xen` themselves, in dom0: CPython, unik, the plugins, and
    # the hello project at its host path, which its plan records (its configuration and artifact;
    # the kernel is linked in by the script).
    python_files, binaries, unik_cmd = unik_for_dom0()
    files.update(python_files)
    project = build(copy_example("hello", work / "project"), env=DOM0_PLUGINS).parent.parent
    files.update({str(p): p for p in sorted(project.rglob("*"))
                  if p.is_file() and p.name != "vmlinux" and "__pycache__" not in p.parts})
    script = (
        'cd /guest/hello && echo "UNIK-XL-PARSE" && xl create -n hello.xl; echo "UNIK-XL-PARSE-STATUS $?"\n'
        + nested.xl_create_console("/guest/hello", "hello.xl", "hello-pvh")
        + "ln -s /guest/hello/vmlinux /guest/hello-pv/vmlinux\n"
        + nested.xl_create_console("/guest/hello-pv", "hello.xl", "hello-pv")
        + "ln -s /guest/hello/vmlinux /guest/kv/vmlinux && truncate -s 16M /guest/kv/disk.img\n"
        # application arguments ride on the kernel command line: xl's cmdline= override
        + nested.xl_create_console("/guest/kv", f"kv.xl 'cmdline=\"{KV_CMDLINE}\"'", "kv-set")
        + nested.xl_create_console("/guest/kv", "kv.xl", "kv-again")
        + KV_STOP_SCRIPT
        + nested.xl_create_console("/guest/kv", "kv.xl", "kv-after-stop")
        + HTTP_SCRIPT
        + "ln -s /guest/hello/vmlinux /guest/fastapi/vmlinux\n"
        + FASTAPI_SCRIPT.format(python=unik_cmd)
        + f"ln -s /guest/hello/vmlinux {project}/dist/hello-xen/vmlinux && cd {project}\n"
        + f'echo UNIK-DOCTOR; {unik_cmd} -m unik.cli doctor -t xen; echo "UNIK-DOCTOR-STATUS $?"\n'
        + f'echo UNIK-RUN; {unik_cmd} -m unik.cli run -t xen --greeting=bonjour --count=2; echo "UNIK-RUN-STATUS $?"\n'
    )
    image = nested.dom0_initramfs(xen_host, script, files, work / "dom0.cpio", binaries)
    start = time.monotonic()
    run = nested.boot(xen_host, image.path, time_limit=900)
    (work / "console.txt").write_text(run.text)
    print(f"Xen under QEMU: {time.monotonic() - start:.1f} s; console in {work / 'console.txt'}")
    return run


def test_dom0_comes_up_as_the_control_domain(xen_run: nested.NestedRun) -> None:
    assert f"{nested.READY} control_d" in xen_run.text, xen_run.text[-3000:]
    assert f"{nested.DONE} 0" in xen_run.text


def test_xl_create_n_accepts_the_emitted_config(xen_run: nested.NestedRun) -> None:
    text = xen_run.text
    parsed = text[text.index("UNIK-XL-PARSE"):text.index("UNIK-XL-PARSE-STATUS")]
    assert '"type": "pvh"' in parsed and '"tsc_mode": "native"' in parsed and '"max_memkb": 262144' in parsed
    assert "UNIK-XL-PARSE-STATUS 0" in text


@pytest.mark.parametrize("label", ["hello-pvh", "hello-pv"])
def test_hello_runs_as_a_xen_guest(xen_run: nested.NestedRun, label: str) -> None:
    part = nested.section(xen_run, label)
    assert part is not None and part.xl_status is not None, xen_run.text[-3000:]
    lines = part.guest_lines
    assert [line for line in lines if line == "hello"] == ["hello"] * 4, "\n".join(lines)
    assert "unik-init: exit status 0" in lines
    assert not any("Kernel panic" in line or "Traceback" in line for line in lines)


def test_fat_on_a_xen_disk_keeps_its_data_across_boots(xen_run: nested.NestedRun) -> None:
    first, second = nested.section(xen_run, "kv-set"), nested.section(xen_run, "kv-again")
    assert first is not None and second is not None, xen_run.text[-3000:]
    assert "block: /guest/kv/disk.img on /dev/loop0" in first.guest_lines  # our hotplug script
    assert {"boot #1", "greeting = hello", "meta/boots = 1", "unik-init: exit status 0"} <= set(first.guest_lines), \
        "\n".join(first.guest_lines)
    assert {"boot #2", "greeting = hello", "meta/boots = 2", "unik-init: exit status 0"} <= set(second.guest_lines), \
        "\n".join(second.guest_lines)


def test_xl_shutdown_stops_the_application_gracefully(xen_run: nested.NestedRun) -> None:
    text = xen_run.text
    assert "UNIK-KV-STOP-CONSOLE-END" in text, text[-3000:]
    assert "UNIK-KV-STOP-SHUTDOWN 0" in text, text[text.index("UNIK-KV-STOP-CREATE"):][-3000:]
    console = text[text.index("UNIK-KV-STOP-CONSOLE"):text.index("UNIK-KV-STOP-CONSOLE-END")]
    assert "holding the store open until stopped" in console
    assert "unik-init: a shutdown request: stopping /usr/bin/python3" in console, console
    assert "unik-init: exit status 143" in console, console
    after = nested.section(xen_run, "kv-after-stop")
    assert after is not None, text[-3000:]
    assert {"boot #4", "stopped = gracefully"} <= set(after.guest_lines), "\n".join(after.guest_lines)


def test_http_answers_dom0_over_the_bridge(xen_run: nested.NestedRun) -> None:
    text = xen_run.text
    assert "vif-bridge: vif" in text and "on xenbr0" in text  # our hotplug script attached the vif
    assert "UNIK-HTTP-ANSWER" in text, text[text.index("UNIK-HTTP-CREATE"):][-3000:]
    answer = text[text.index("UNIK-HTTP-ANSWER"):text.index("UNIK-HTTP-CONSOLE")]
    assert "HTTP/1.1 200 OK" in answer and "Hello from unik" in answer
    console = text[text.index("UNIK-HTTP-CONSOLE"):text.index("UNIK-HTTP-CONSOLE-END")]
    # xen-netfront, virtio-rng and virtio_net (for --emulate) with their dependencies, and the ACPI
    # power button (--emulate's stop presses it): 12, as two nested runs printed
    assert "serving on 10.0.0.2:8080" in console and "12 modules loaded" in console


def test_fastapi_example_answers_dom0_and_stops_gracefully(xen_run: nested.NestedRun) -> None:
    text = xen_run.text
    assert "UNIK-FASTAPI-CONSOLE-END" in text, text[-3000:]
    part = text[text.index("UNIK-FASTAPI-CREATE"):text.index("UNIK-FASTAPI-CONSOLE-END")]
    assert "UNIK-FASTAPI-CLIENT 0" in part, part[-3000:]
    lines = part.splitlines()
    [answer] = [line for line in lines if line.startswith("UNIK-FASTAPI-ANSWER")]
    assert answer.endswith(': 200 {"hello":"unik","server":"uvicorn"}'), answer
    assert 'UNIK-FASTAPI-POST 200 {"name":"tea","total":5.0}' in lines, part  # pydantic validated the body
    assert 'UNIK-FASTAPI-ORDERS 200 [{"name":"tea","quantity":2}]' in lines, part  # the background task ran
    assert "UNIK-FASTAPI-SHUTDOWN 0" in part, part[-3000:]
    console = part[part.index("UNIK-FASTAPI-CONSOLE"):]
    assert "Uvicorn running on http://10.0.0.3:8000" in console and '"POST /orders HTTP/1.1" 200' in console
    assert "Application shutdown complete" in console and "unik-init: exit status 143" in console, console


def test_unik_run_and_doctor_in_dom0(xen_run: nested.NestedRun) -> None:
    text = xen_run.text
    assert "UNIK-RUN-STATUS" in text, text[-3000:]
    doctor = text[text.index("UNIK-DOCTOR"):text.index("UNIK-DOCTOR-STATUS")]
    assert "[ok] Xen control domain" in doctor and "[ok] xl toolstack" in doctor, doctor
    run = text[text.index("UNIK-RUN"):text.index("UNIK-RUN-STATUS")]
    assert run.count("bonjour") == 2, run  # the application's keys went through xl's cmdline
    assert "UNIK-RUN-STATUS 0" in text, run  # the status from the guest's console


def test_qemu_is_gone(xen_run: nested.NestedRun, xen_host: nested.XenHost) -> None:
    assert xen_run.returncode is not None  # boot() waited for the QEMU it killed
    running = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(xen_host.xen) in cmdline.read_bytes().decode(errors="replace"):
                running.append(cmdline.parent.name)
        except OSError:
            continue
    assert running == []
