"""The standard library's C accelerators Debian ships as shared modules run built into the hvt unikernel."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from hvt_support import ROOT, build_app, needs_build_tools, needs_kvm, unik
from unik_solo5.hvt_stdlib import MODULES


def test_asyncio_json_queue_typing_and_zoneinfo_take_their_c_modules(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = build_app(tmp_path, "accel",
                    head="import asyncio, json, json.decoder, json.encoder, queue, sys, zoneinfo\n", body="""\
        task = asyncio.current_task()
        console.log(f"asyncio {type(task).__module__} {asyncio.Future.__module__}")
        console.log(f"json {json.decoder.scanstring.__module__} {json.encoder.c_make_encoder is not None}")
        import _zoneinfo
        console.log(f"queue {queue.SimpleQueue.__module__} zoneinfo {zoneinfo.ZoneInfo is _zoneinfo.ZoneInfo}")
        built_in = [m for m in ("_asyncio", "_json", "_queue", "_typing", "_zoneinfo", "_ssl", "_hashlib",
                                "_multiprocessing") if m in sys.builtin_module_names]
        console.log(f"built in {' '.join(built_in)}")
        console.log(json.dumps({"a": [1, 2.5, None, "\\u00e9"]}, ensure_ascii=False))
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, 42)
        console.log(f"future {await fut}")
        """)
    out = unik(app, "run", "-t", "hvt").stdout.splitlines()
    assert out == ["asyncio _asyncio _asyncio", "json _json True",
                   "queue _queue zoneinfo True",
                   "built in _asyncio _json _queue _typing _zoneinfo _ssl _hashlib _multiprocessing",
                   '{"a": [1, 2.5, null, "é"]}', "future 42"]
    assert {"_asyncio", "_json", "_queue", "_typing", "_zoneinfo", "_ssl", "_hashlib", "_multiprocessing"} == \
        set(MODULES)


def _build_without_the_source(app: Path) -> subprocess.CompletedProcess[str]:
    """``unik build`` in ``app`` as where Debian's source package cannot be fetched."""
    code = ("import sys\nfrom unik.errors import BuildError\nimport unik_solo5.hvt_stdlib as s\n"
            "def offline(progress):\n    raise BuildError('apt-get update (deb-src) failed: offline')\n"
            "s.objects = offline\nfrom unik.cli import main\nsys.argv = ['unik', 'build']\nsys.exit(main())\n")
    return subprocess.run([sys.executable, "-c", code], cwd=app, capture_output=True, text=True, timeout=600)


def test_without_the_source_a_plan_without_tls_links_without_them_and_one_with_tls_is_refused(tmp_path: Path) -> None:
    needs_build_tools()
    hello = tmp_path / "hello"
    shutil.copytree(ROOT / "examples" / "hello", hello, ignore=shutil.ignore_patterns("_build", "dist"))
    unik(hello, "-q", "configure", "-t", "hvt")
    proc = _build_without_the_source(hello)
    assert proc.returncode == 0, proc.stderr
    assert "linking without _ssl, _hashlib, _asyncio" in proc.stderr and "offline" in proc.stderr
    https = tmp_path / "https"
    shutil.copytree(ROOT / "examples" / "https", https, ignore=shutil.ignore_patterns("_build", "dist", "certs"))
    unik(https, "-q", "tls", "selfsigned", "-o", "certs")
    unik(https, "-q", "configure", "-t", "hvt")
    proc = _build_without_the_source(https)
    assert proc.returncode != 0
    assert "the plan's TLS device needs the ssl module, built into the unikernel: apt-get update" in proc.stderr
