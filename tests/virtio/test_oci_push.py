"""The OCI image through a real registry (Debian's docker-registry on loopback), and its kernelBoot triple booted.

`unik push` sends the layout with skopeo; skopeo pulls it back; the digests must be
equal.  Then the kernel, initramfs and arguments that the KubeVirt manifest names are
taken out of the pulled image and booted the way KubeVirt's launcher boots
``kernelBoot`` (QEMU's -kernel/-initrd/-append, q35, virtio devices, the NIC with the
manifest's MAC, virtio-rng): examples/http answers curl.
"""

from __future__ import annotations

import gzip
import io
import json
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from deploy_support import base_command, manifest, serve_and_curl, tap_netns
from host_tools import needs, require
from served_support import stop
from unik_vmimage import qemu
from unik_vmimage.disk.oci import read_manifest
from unik_vmimage.push import is_loopback, registry_host, repository
from vm_support import UNIK, unik

REGISTRY_START_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry serving a temporary directory on a free loopback port; stopped afterwards."""
    require("docker-registry", "skopeo")
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(root / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    server = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + REGISTRY_START_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode() if server.stderr and server.poll() is not None else ""
                pytest.fail(f"docker-registry did not serve on 127.0.0.1:{port}: {err}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        stop(server, 10)


@pytest.fixture(scope="module")
def pulled(deploy_app: Path, registry: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """examples/http pushed with `unik push` and pulled back with skopeo: (layout, pushed ref, unik's output)."""
    ref = f"{registry}/unik/http:test"
    proc = unik("push", ref, cwd=deploy_app)
    layout = tmp_path_factory.mktemp("pulled") / "http.oci"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:latest"],
                   check=True, capture_output=True)
    return layout, ref, proc.stdout + proc.stderr


def test_the_image_round_trips_through_the_registry_with_the_same_digest(
        deploy_app: Path, pulled: tuple[Path, str, str], registry: str) -> None:
    layout, ref, output = pulled
    built = manifest(deploy_app / "dist" / "http-virtio")["images"]["oci"]["manifest"]
    assert f"{registry}/unik/http@{built}" in output.splitlines()  # what unik push printed: the digest stored
    assert "over plain HTTP (skopeo --dest-tls-verify=false)" in output  # said, and only because it is loopback
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == built
    remote = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True,
                            text=True, check=True)
    assert json.loads(remote.stdout)["Digest"] == built
    # unik push named the pushed image, pinned by digest, in the KubeVirt manifest
    vm = yaml.safe_load((deploy_app / "dist" / "http-virtio" / "http.kubevirt.yaml").read_text())
    image = vm["spec"]["template"]["spec"]["domain"]["firmware"]["kernelBoot"]["container"]["image"]
    assert image == f"{registry}/unik/http@{built}"


def _extract(layout: Path, wanted: dict[str, Path]) -> None:
    """Copy files of the image's (one) layer out: image path -> host path."""
    (layer,) = read_manifest(layout)["layers"]
    blob = layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
        for inside, dest in wanted.items():
            member = tar.extractfile(inside.lstrip("/"))
            assert member is not None, inside
            dest.write_bytes(member.read())


@pytest.mark.slow
@pytest.mark.root
def test_the_kernel_boot_triple_from_the_pulled_image_answers_curl(
        deploy_app: Path, pulled: tuple[Path, str, str], tmp_path: Path) -> None:
    layout, _, _ = pulled
    vm = yaml.safe_load((deploy_app / "dist" / "http-virtio" / "http.kubevirt.yaml").read_text())
    spec = vm["spec"]["template"]["spec"]
    boot = spec["domain"]["firmware"]["kernelBoot"]
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd"
    _extract(layout, {boot["container"]["kernelPath"]: kernel, boot["container"]["initrdPath"]: initrd})
    (nic,) = spec["domain"]["devices"]["interfaces"]
    assert "macAddress" not in nic  # KubeVirt chooses it; the guest takes the only NIC
    memory = spec["domain"]["resources"]["requests"]["memory"].removesuffix("Mi") + "M"
    with tap_netns("kubevirt") as netns:
        command = [*base_command(memory), "-kernel", str(kernel), "-initrd", str(initrd),
                   "-append", boot["kernelArgs"],
                   "-netdev", "tap,id=net-default,ifname=tapd0,script=no,downscript=no",
                   "-device", qemu.nic_device("virtio-net-pci", "default", "52:54:00:c1:0d:03")]  # KubeVirt's choice
        _, console = serve_and_curl(netns, command)
    assert console[-1].strip() == "serving on 10.97.0.2:8080"


def test_references_are_checked_and_loopback_is_recognised() -> None:
    assert registry_host("127.0.0.1:5000/app:1") == "127.0.0.1" and is_loopback("127.0.0.1")
    assert registry_host("[::1]:5000/app") == "::1" and is_loopback("::1")
    assert registry_host("localhost:5000/app") == "localhost" and is_loopback("localhost")
    assert registry_host("ghcr.io/me/app:1") == "ghcr.io" and not is_loopback("ghcr.io")
    assert repository("127.0.0.1:5000/unik/http:test") == "127.0.0.1:5000/unik/http"
    from unik.errors import UserError

    for bad in ("docker://ghcr.io/me/app", "app:1", "me/app"):
        with pytest.raises(UserError, match="registry"):
            registry_host(bad)


@needs("skopeo")
def test_push_refuses_an_artifact_without_an_oci_image(tmp_path: Path) -> None:
    proc = subprocess.run([UNIK, "push", "127.0.0.1:9/x:1", "--layout", str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "is not an OCI image layout (no index.json)" in proc.stderr
