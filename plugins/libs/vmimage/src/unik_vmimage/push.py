"""``unik push REF``: the built OCI image layout to a registry, with skopeo.

The layout is the one ``unik build`` wrote for ``--image oci`` (``dist/<name>-virtio/<name>.oci``,
named in ``artifact.json``); ``skopeo copy oci:<layout>:latest docker://REF`` sends it
(skopeo speaks the registry protocol and reads the user's registry credentials:
``skopeo login``).  TLS is verified, except for a registry on the loopback interface
(``localhost``, ``127.0.0.0/8``, ``[::1]``), where ``--dest-tls-verify=false`` is passed
and said: a local test registry serves plain HTTP.  Nothing is built: push what
``unik build`` made.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from unik.errors import RunError, UserError
from unik.progress import Progress


def registry_host(ref: str) -> str:
    """The registry's host of ``REF`` (``127.0.0.1:5000/app:1`` -> ``127.0.0.1``), or a :class:`UserError`."""
    if "://" in ref:
        raise UserError(f"{ref}: give the reference without a scheme, as registry/repository[:tag] "
                        "(e.g. 127.0.0.1:5000/http:1 or ghcr.io/me/http:1)")
    first, slash, _ = ref.partition("/")
    if not slash or not (first == "localhost" or "." in first or ":" in first):
        raise UserError(f"{ref}: name the registry first, as registry/repository[:tag] "
                        "(e.g. 127.0.0.1:5000/http:1): unik does not guess a default registry")
    if first.startswith("["):
        return first[1:].split("]", 1)[0]
    return first.rsplit(":", 1)[0] if first.count(":") == 1 else first


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine's loopback (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    import ipaddress  # here: every unik command loads this module to add `unik push`

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def skopeo() -> str:
    """``skopeo``, or a :class:`RunError` saying how to install it."""
    found = shutil.which("skopeo")
    if not found:
        raise RunError("unik push copies the image with skopeo: apt-get install skopeo")
    return found


def push(layout: Path, ref: str, progress: Progress, tag: str = "latest") -> str:
    """Copy the layout's image to ``docker://REF``; returns the digest the registry stored."""
    host = registry_host(ref)
    args = [skopeo(), "copy", "--quiet"]
    if is_loopback(host):
        progress.info(f"pushing to the registry on this machine's loopback ({host}) over plain HTTP "
                      "(skopeo --dest-tls-verify=false)")
        args.append("--dest-tls-verify=false")
    with tempfile.TemporaryDirectory(prefix="unik-push-") as tmp:
        digest_file = Path(tmp) / "digest"
        args += ["--digestfile", str(digest_file), f"oci:{layout}:{tag}", f"docker://{ref}"]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            why = proc.stderr.strip() or proc.stdout.strip()
            raise RunError(f"skopeo could not push {layout.name} to {ref}: {why}")
        return digest_file.read_text().strip()


def built_images(directory: Path) -> dict[str, Any]:
    """The ``images`` entries of the artifact in ``directory`` if it has an OCI image, or a :class:`UserError`."""
    try:
        manifest = json.loads((directory / "artifact.json").read_text())["manifest"]
    except (OSError, ValueError, KeyError):
        raise UserError(f"{directory} holds no built artifact: run `unik build`") from None
    images: dict[str, Any] = manifest.get("images", {})
    if not images.get("oci"):
        raise UserError(f"{directory.name} was built without an OCI image: "
                        "`unik configure -t virtio --image oci` (with any other forms), then `unik build`")
    if not (directory / images["oci"]["layout"] / "index.json").is_file():
        raise UserError(f"{directory / images['oci']['layout']} is missing: run `unik build`")
    return images


def repository(ref: str) -> str:
    """``REF`` without its tag or digest: ``127.0.0.1:5000/http:1`` -> ``127.0.0.1:5000/http``."""
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return ref[: len(ref) - len(last)] + last.split(":", 1)[0]


def pin_kubevirt(directory: Path, images: dict[str, Any], pushed: str, progress: Progress) -> None:
    """Name the pushed ``repository@digest`` in the artifact's KubeVirt manifest."""
    from .disk import kubevirt

    entry = images.get("kubevirt")
    if entry:
        name = entry["file"].removesuffix(".kubevirt.yaml")
        (directory / entry["file"]).write_text(kubevirt.render(name, images, image=pushed))
        progress.info(f"{entry['file']} now boots {pushed}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``unik push REF``."""
    p = subparsers.add_parser(
        "push", help="push the built OCI image to a registry (skopeo)",
        description="Push the OCI image `unik build` wrote for --image oci to a registry with skopeo copy. "
                    "TLS is verified except for a registry on the loopback interface.")
    p.add_argument("ref", metavar="REF", help="registry/repository[:tag], e.g. 127.0.0.1:5000/http:1")
    p.add_argument("-t", "--target", help="target (default: the one configured last)")
    p.add_argument("--layout", metavar="DIR", help="an OCI image layout to push instead of the built one")
    p.set_defaults(func=cmd_push)


def cmd_push(ns: argparse.Namespace) -> int:
    """Push, name the pushed image in the KubeVirt manifest, print ``REPOSITORY@sha256:...``."""
    registry_host(ns.ref)  # a bad reference is refused before anything is read
    directory, images = None, {}
    if ns.layout:
        layout = Path(ns.layout)
        if not (layout / "index.json").is_file():
            raise UserError(f"{layout} is not an OCI image layout (no index.json)")
    else:
        from unik.project import Project

        project = Project.find(Path(ns.project or "."), ns.pm, ns.progress)
        directory = project.artifact_dir(project.configuration(ns.target).plan)
        images = built_images(directory)
        layout = directory / images["oci"]["layout"]
    digest = push(layout.resolve(), ns.ref, ns.progress)
    pushed = f"{repository(ns.ref)}@{digest}"
    ns.progress.info(f"pushed {layout.name} to {ns.ref}")
    if directory is not None:
        pin_kubevirt(directory, images, pushed, ns.progress)
    print(pushed)
    return 0
