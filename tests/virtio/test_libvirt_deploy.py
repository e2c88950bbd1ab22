"""unik deploy through a real libvirtd: examples/http answers curl, examples/kv stops gracefully with a clean disk.

The daemon is Debian's, started by the fixture with private paths in a network
namespace holding the guest's TAP (tests/virtio/libvirt_support.py); the domains are
``type='qemu'`` (TCG: this machine's KVM cannot boot a guest).  ``unik ps``, ``logs``,
``stop`` and ``rm`` work on the deployed domain as on a local run.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import missing, require
from libvirt_support import Libvirtd, private_libvirtd
from lifecycle_support import fat_tools_missing, fsck_clean, held_kv, mtype, unik, wait_for_log
from unik_vmimage.keys import instance_mac

pytestmark = [pytest.mark.slow, pytest.mark.root]

#: Boot, Python's start and the first console lines under TCG, with other tests running.
UP_TIMEOUT_S = 240.0


@pytest.fixture
def libvirtd() -> Iterator[Libvirtd]:
    """A private libvirtd in a namespace with TAP ``tapv0`` at 10.97.0.1/24; both removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (libvirtd, network namespaces and TAP devices)")
    why = missing("libvirtd", "virtlogd", "curl")
    if why:
        pytest.skip(why)
    try:
        import libvirt  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        pytest.skip("libvirt's Python binding is missing: pip install libvirt-python (needs libvirt-dev, pkg-config)")
    netns = f"unik-lv-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        for cmd in (["tuntap", "add", "dev", "tapv0", "mode", "tap"], ["addr", "add", "10.97.0.1/24", "dev", "tapv0"],
                    ["link", "set", "tapv0", "up"]):
            subprocess.run(["ip", "-n", netns, *cmd], check=True)
        with private_libvirtd(netns) as daemon:
            yield daemon
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def _ps(app: Path, state: Path) -> dict[str, dict[str, object]]:
    return {i["name"]: i for i in json.loads(unik(app, "ps", "--json", state=state).stdout)}


def _defined(daemon: Libvirtd) -> list[str]:
    import libvirt

    conn = libvirt.open(daemon.uri)
    try:
        return sorted(d.name() for d in conn.listAllDomains())
    finally:
        conn.close()


def test_examples_http_deployed_answers_curl_and_stops_gracefully(
    http_app: Path, libvirtd: Libvirtd, tmp_path: Path,
) -> None:
    require("virt-xml-validate")
    built = http_app / "dist" / "http-virtio.libvirt.xml"  # what unik build wrote, valid for libvirt
    assert subprocess.run(["virt-xml-validate", str(built), "domain"], capture_output=True).returncode == 0
    assert "unik_seed" not in built.read_text()
    state, name = tmp_path / "state", f"web-{os.getpid()}"
    deployed = unik(http_app, "deploy", "--connect", libvirtd.uri, "--name", name, "--domain-type", "qemu",
                    "--", "--ipv4", "10.97.0.2/24", state=state)
    assert deployed.stdout.strip() == name and "as a qemu domain" in deployed.stderr
    assert _defined(libvirtd) == [name]
    record = _ps(http_app, state)[name]
    assert record["shown_state"] == "running" and record["details"]["domain"] == name  # type: ignore[index]
    assert record["details"]["macs"] == {"service": instance_mac(name, "service")}  # type: ignore[index]
    assert record["addresses"] == ["10.97.0.2/24"]

    log = wait_for_log(http_app, name, "serving on 10.97.0.2:8080", state, timeout=UP_TIMEOUT_S)
    assert "32 seed bytes from the hardware RNG" in log  # virtio-rng, not the command line
    page = subprocess.run(["ip", "netns", "exec", libvirtd.netns, "curl", "-sS", "--max-time", "20", "--retry", "3",
                           "http://10.97.0.2:8080/"], capture_output=True, text=True)
    assert "<h1>Hello from unik</h1>" in page.stdout, page.stderr + log
    neighbours = subprocess.run(["ip", "-n", libvirtd.netns, "neigh", "show", "dev", "tapv0"], capture_output=True,
                                text=True).stdout
    assert instance_mac(name, "service") in neighbours  # the instance's own MAC on the wire
    table = unik(http_app, "ps", state=state).stdout
    assert f"domain {name}" in table and "running" in table

    stopped = unik(http_app, "stop", "--timeout", "120", name, state=state)
    assert f"{name} stopped" in stopped.stderr
    log = unik(http_app, "logs", name, state=state).stdout
    assert "unik-init: the power button: stopping" in log and "exit status 143" in log
    assert _ps(http_app, state)[name]["shown_state"] == "exited (143)"
    unik(http_app, "rm", name, state=state)
    assert _defined(libvirtd) == [] and _ps(http_app, state) == {}


def test_examples_kv_deployed_keeps_every_write_on_a_clean_fat_disk(libvirtd: Libvirtd, tmp_path: Path) -> None:
    why = fat_tools_missing()
    if why:
        pytest.skip(why)
    root = held_kv(tmp_path / "app")  # flushed only on disconnect: a clean disk proves the graceful stop
    state, disk, name = tmp_path / "state", tmp_path / "app" / "kv" / "disk.img", f"kv-{os.getpid()}"
    unik(root, "configure", "-t", "virtio", state=state)
    unik(root, "build", state=state)
    unik(root, "deploy", "--connect", libvirtd.uri, "--name", name, "--domain-type", "qemu", "--block",
         f"storage={disk}", "--", "--hold", "--key", "notes/Long Name.txt", "--value", "kept by libvirt's button",
         state=state)
    held = ET.fromstring(_xml(libvirtd, name))  # the definition libvirt keeps
    assert [(d.findtext("serial"), d.find("source").get("file")) for d in held.iter("disk")] == [  # type: ignore[union-attr]
        ("storage", str(disk))]
    wait_for_log(root, name, "holding the store open", state, timeout=UP_TIMEOUT_S)
    stopped = unik(root, "stop", "--timeout", "120", name, state=state)
    assert f"{name} stopped" in stopped.stderr
    assert "exit status 143" in unik(root, "logs", name, state=state).stdout
    fsck_clean(disk)
    assert mtype(disk, "/kv/notes/Long Name.txt") == "kept by libvirt's button"
    unik(root, "rm", name, state=state)
    assert _defined(libvirtd) == []


def _xml(daemon: Libvirtd, name: str) -> str:
    """The domain's definition as libvirt keeps it."""
    import libvirt

    conn = libvirt.open(daemon.uri)
    try:
        return str(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        conn.close()


def test_deploy_names_an_unreachable_daemon(http_app: Path, tmp_path: Path) -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        pytest.skip("libvirt's Python binding is missing: pip install libvirt-python")
    failed = unik(http_app, "deploy", "--connect", f"qemu+unix:///system?socket={tmp_path}/none",
                  "--domain-type", "qemu", state=tmp_path / "state", check=False)
    assert failed.returncode == 1
    assert "cannot connect to libvirt at qemu+unix:///system" in failed.stderr
    assert "is libvirtd running?" in failed.stderr
    assert _ps(http_app, tmp_path / "state") == {}  # the instance's name was given back
