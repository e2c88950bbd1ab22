"""What a VM image holds, for ``unik inspect``: the kernel, the initramfs's files by kind, the rest.

The initramfs is read back (:func:`unik_vmimage.initramfs.read_initramfs`) and each
file told apart by where :func:`~unik_vmimage.initramfs.build_initramfs` put it: the
init, kernel modules under ``lib/modules``, the standard library under
``usr/lib/pythonX.Y``, the application bundle under ``app/`` (classified with the
``plan.json`` it carries), the interpreter and its shared libraries elsewhere.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from unik.errors import RunError
from unik.inventory import Content, classify_bundle, module_of

from .initramfs import APP, PREFIX, read_initramfs


def _stdlib_module(rel: str) -> str:
    """``asyncio/events.pyc`` -> asyncio; ``lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so`` -> _ssl."""
    if rel.startswith("lib-dynload/"):
        return rel.split("/", 1)[1].split(".", 1)[0]
    return module_of(rel)


def image_contents(directory: Path, manifest: dict[str, Any]) -> tuple[list[Content], dict[str, str]]:
    """The contents of the VM artifact in ``directory`` and its facts (kernel, compression, sizes)."""
    kernel = manifest.get("kernel", {})
    initramfs = directory / str(manifest.get("initramfs", {}).get("file", ""))
    if not initramfs.is_file():
        raise RunError(f"{initramfs} is missing: run `unik build`")
    contents: list[Content] = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path != initramfs:
            rel = path.relative_to(directory).as_posix()
            is_kernel = rel in (kernel.get("file"), kernel.get("vmlinux"))
            contents.append(Content(rel, path.stat().st_size, "kernel" if is_kernel else "artifact",
                                    str(kernel.get("version", "")) if is_kernel else ""))
    entries = [e for e in read_initramfs(initramfs) if stat.S_ISREG(e.mode)]
    unpacked = sum(len(e.data) for e in entries)
    stdlib = f"{PREFIX}/lib/python{manifest.get('python', '')}/"
    plan_entry = next((e for e in entries if e.name == f"{APP}/plan.json"), None)
    plan = json.loads(plan_entry.data) if plan_entry is not None else None
    bundled: list[tuple[str, int]] = []
    for e in entries:
        name, size = e.name, len(e.data)
        if name == "init":
            contents.append(Content(name, size, "init"))
        elif name.startswith("lib/modules/"):
            contents.append(Content(name, size, "kernel module", Path(name).name.split(".", 1)[0]))
        elif name.startswith("unik/"):
            contents.append(Content(name, size, "generated"))
        elif name.startswith(f"{APP}/"):
            bundled.append((name[len(APP) + 1:], size))
        elif name.startswith(stdlib):
            contents.append(Content(name, size, "standard library", _stdlib_module(name[len(stdlib):])))
        else:
            contents.append(Content(name, size, "interpreter"))
    contents += classify_bundle(bundled, plan, prefix=f"{APP}/")
    facts = {
        "kernel": f"{kernel.get('version', '?')} from {kernel.get('provider', '?')}",
        "initramfs": f"{initramfs.name}: {initramfs.stat().st_size} bytes compressed, {unpacked} unpacked, "
                     f"{len(entries)} files",
        "python": str(manifest.get("python", "?")),
        "memory": str(manifest.get("mem", "?")),
    }
    return contents, facts
