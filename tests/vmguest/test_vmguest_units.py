"""The guest's devices without a guest: RDRAND and its twin, virtio-rng's reads, the Xen disk map."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from unik.errors import DeviceUnavailable
from unik_vmguest.xen import find_xen_disk


def test_guest_finds_its_disk_through_the_image_map(tmp_path: Path) -> None:
    disks = tmp_path / "xen-disks.json"
    disks.write_text(json.dumps({"storage": "xvdb"}))
    (tmp_path / "sys" / "xvda").mkdir(parents=True)
    with pytest.raises(DeviceUnavailable, match=r"no disk xvdb in the guest \(found: xvda\)"):
        find_xen_disk("storage", disks, tmp_path / "sys")
    (tmp_path / "sys" / "xvdb").mkdir()
    assert find_xen_disk("storage", disks, tmp_path / "sys") == "xvdb"
    with pytest.raises(DeviceUnavailable, match="not in the image's disk map"):
        find_xen_disk("other", disks, tmp_path / "sys")


@pytest.mark.parametrize("pure", [False, True])
def test_rdrand_backends(pure: bool) -> None:
    import importlib

    mod = importlib.import_module("unik_vmguest._rdrand_pure" if pure else "unik_vmguest._rdrand")
    has = " rdrand" in Path("/proc/cpuinfo").read_text()
    assert mod.available() == (has and not pure)
    if mod.available():
        a, b = mod.read(37), mod.read(37)
        assert len(a) == 37 and a != b
        assert mod.read(0) == b""
    else:
        with pytest.raises(OSError, match="RDRAND"):
            mod.read(8)
    with pytest.raises(ValueError):
        mod.read(-1)


def test_entropy_mixes_rdrand_into_its_source() -> None:
    import asyncio

    from unik_vmguest.random import VirtioEntropy, rdrand

    source = VirtioEntropy(None, use_rdrand=rdrand.available())
    data = asyncio.run(source.read(32))
    assert len(data) == 32
    assert source.name == ("rdrand" if rdrand.available() else "getrandom")


def test_hwrng_reads_wait_without_a_thread_for_data_that_comes_later() -> None:
    """/dev/hwrng (here a non-blocking pipe) answers EAGAIN until the host has filled the request."""
    import asyncio
    import threading

    from unik.errors import DeviceError
    from unik_vmguest.random import VirtioEntropy

    async def scenario() -> tuple[bytes, int]:
        r, w = os.pipe2(os.O_NONBLOCK)
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, os.write, w, b"a" * 40)
        loop.call_later(0.05, os.write, w, b"b" * 40)
        source = VirtioEntropy(r, use_rdrand=False)
        threads = threading.active_count()
        data = await source.read(70)
        assert threading.active_count() == threads  # no executor thread was started
        os.close(w)
        with pytest.raises(DeviceError, match="no data"):
            await source.read(20)  # 10 bytes left, then end of file
        await source.disconnect()
        return data, threads

    data, _ = asyncio.run(scenario())
    assert data == b"a" * 40 + b"b" * 30
