"""unik's DNS codec or dnspython? Import cost inside a virtio VM and bytes added to its initramfs.

Two probe applications are built for virtio: one depends on unik-lib-tcpip alone, the
other on unik-lib-tcpip and dnspython (installed for the build from the wheel named by
``UNIK_BENCH_DNSPYTHON``, into a temporary directory; nothing is installed in the
environment).  Booted under the accelerator ``unik run`` picks (``--accel`` to force),
each probe imports one side in a fresh interpreter and prints how long that took, as the
resolver would use it: unik's ``unik_tcpip.dns`` (wire, resolver, Happy Eyeballs) or
dnspython's ``dns.message`` with the A, AAAA and CNAME types, each building and parsing
one query.  Figures: the median of ``RUNS`` boots, natively and in the VM, and the
compressed and unpacked initramfs sizes of the two images.

    UNIK_BENCH_DNSPYTHON=/path/to/dnspython-2.8.0-py3-none-any.whl python bench/dns_codec.py [--accel tcg]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import table, write

UNIK = str(Path(sys.executable).with_name("unik"))
RUNS = 3

PROBE = '''\
"""Time importing one DNS implementation (--which=unik|dnspython) in a fresh interpreter."""

import time

from unik.devices import Console


def _unik() -> None:
    from unik_tcpip.dns import happy, resolver, wire  # noqa: F401

    wire.parse_message(wire.build_query(1, wire.encode_name("example.com"), wire.A))


def _dnspython() -> None:
    import dns.message
    import dns.rdtypes.ANY.CNAME  # noqa: F401
    import dns.rdtypes.IN.A  # noqa: F401
    import dns.rdtypes.IN.AAAA  # noqa: F401

    dns.message.from_wire(dns.message.make_query("example.com", "A").to_wire())


async def start(console: Console, *, which: str = "unik") -> None:
    import unik_tcpip.stack  # noqa: F401 - what an application on unik's stack has loaded already

    t = time.perf_counter()
    (_unik if which == "unik" else _dnspython)()
    console.log(f"import-ms {which} {(time.perf_counter() - t) * 1e3:.2f}")
'''


def write_probe(root: Path, deps: list[str]) -> Path:
    (root / "src" / "probe_app").mkdir(parents=True)
    (root / "src" / "probe_app" / "__init__.py").write_text(PROBE)
    quoted = ", ".join(f'"{d}"' for d in deps)
    (root / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=68", "unik-core"]\nbuild-backend = "unik.build_meta"\n\n'
        f'[project]\nname = "probe"\nversion = "0.1.0"\ndependencies = [{quoted}]\n\n'
        f'[tool.unik]\nmain = "probe_app:start"\n')
    return root


def unpacked_size(initramfs: Path) -> int:
    """The bytes of the files the initramfs unpacks to."""
    from unik_vmimage.initramfs import read_initramfs

    return sum(len(entry.data) for entry in read_initramfs(initramfs))


def boot(app: Path, which: str, accel: list[str], env: dict[str, str]) -> float:
    out = subprocess.run([UNIK, "run", *accel, f"--which={which}"], cwd=app, capture_output=True, text=True,
                         timeout=300, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("import-ms "):
            return float(line.split()[2])
    raise SystemExit(f"the probe printed no figure:\n{out.stdout}\n{out.stderr}")


def native(which: str, env: dict[str, str], probe_src: Path) -> float:
    code = (f"import asyncio, sys; sys.path.insert(0, {str(probe_src)!r}); import probe_app\n"
            "class C:\n    def log(self, m): print(m)\n"
            f"asyncio.run(probe_app.start(C(), which={which!r}))")
    times = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        times.append(float(out.stdout.split()[2]))
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accel", default=None, help="kvm or tcg (default: what unik run picks)")
    opts = parser.parse_args()
    wheel = os.environ.get("UNIK_BENCH_DNSPYTHON")
    if not wheel or not Path(wheel).is_file():
        print("bench/dns_codec.py: skipped: set UNIK_BENCH_DNSPYTHON to a dnspython wheel")
        return
    accel = ["--accel", opts.accel] if opts.accel else []
    with tempfile.TemporaryDirectory(prefix="unik-dns-codec-") as tmp_name:
        tmp = Path(tmp_name)
        site = tmp / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
                       check=True)
        env = {**os.environ, "PYTHONPATH": str(site)}
        apps = {"unik": write_probe(tmp / "unik", ["unik-lib-tcpip"]),
                "dnspython": write_probe(tmp / "dnspython", ["unik-lib-tcpip", "dnspython"])}
        sizes: dict[str, tuple[int, int]] = {}
        for which, app in apps.items():
            for step in (["configure", "-t", "virtio"], ["build"]):
                subprocess.run([UNIK, "-q", *step], cwd=app, check=True, env=env)
            image = next((app / "dist").glob("*/initramfs.cpio*"))
            sizes[which] = (image.stat().st_size, unpacked_size(image))
        vm = {which: statistics.median(boot(apps[which], which, accel, env) for _ in range(RUNS)) for which in apps}
        host = {which: native(which, env, apps[which] / "src") for which in apps}
    unik_figures = {"vm_import_ms": round(vm["unik"], 1), "native_import_ms": round(host["unik"], 2),
                    "initramfs_bytes": sizes["unik"][0], "initramfs_unpacked_bytes": sizes["unik"][1]}
    peers = {"dnspython": {"vm_import_ms": round(vm["dnspython"], 1), "native_import_ms": round(host["dnspython"], 2),
                           "initramfs_bytes": sizes["dnspython"][0],
                           "initramfs_unpacked_bytes": sizes["dnspython"][1]}}
    ratios = {"vm_import_dnspython_over_unik": round(vm["dnspython"] / vm["unik"], 2),
              "native_import_dnspython_over_unik": round(host["dnspython"] / host["unik"], 2),
              "initramfs_bytes_added_by_dnspython": sizes["dnspython"][0] - sizes["unik"][0],
              "initramfs_unpacked_bytes_added_by_dnspython": sizes["dnspython"][1] - sizes["unik"][1]}
    table([("import in the VM: unik / dnspython", f"{vm['unik']:.1f} / {vm['dnspython']:.1f} ms"),
           ("import natively: unik / dnspython", f"{host['unik']:.2f} / {host['dnspython']:.2f} ms"),
           ("initramfs: probe / probe + dnspython", f"{sizes['unik'][0]:,} / {sizes['dnspython'][0]:,} bytes"),
           ("unpacked: probe / probe + dnspython", f"{sizes['unik'][1]:,} / {sizes['dnspython'][1]:,} bytes")])
    for key, value in ratios.items():
        print(f"  {key}: {value}")
    print(f"wrote {write('dns_codec', unik_figures, peers, ratios, accelerator=opts.accel)}")


if __name__ == "__main__":
    main()
