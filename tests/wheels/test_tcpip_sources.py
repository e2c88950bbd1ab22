"""unik-lib-tcpip's sdist and wheel carry its C sources and their shared header.

``_tcpframe.h`` is the one home of the frame builder that ``_fastpath.c`` exports and
``tcp/_predict.c`` imports: the sdist needs it to compile at all, and the wheel carries
every C source beside its extension because the hvt target compiles an artifact's
extensions from the source it finds there (``unik_solo5.hvt_target.extension_sources``).
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from wheel_support import REPO, run

TCPIP = REPO / "plugins" / "libs" / "tcpip"
SOURCES = ("unik_tcpip/_checksum.c", "unik_tcpip/_fastpath.c", "unik_tcpip/_tcpframe.h",
           "unik_tcpip/tcp/_predict.c")


@pytest.mark.slow
def test_sdist_and_the_wheel_built_from_it_carry_the_c_sources_and_header(tmp_path: Path) -> None:
    src = tmp_path / "tcpip"  # a copy: the build never writes into the tree editable installs use
    shutil.copytree(TCPIP, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "*.so", "__pycache__"))
    out = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--outdir", out, src], timeout=600)  # the sdist, then its wheel
    (sdist,) = out.glob("unik_lib_tcpip-*.tar.gz")
    (wheel,) = out.glob("unik_lib_tcpip-*.whl")
    with tarfile.open(sdist) as tf:
        in_sdist = {n.split("/src/", 1)[1] for n in tf.getnames() if "/src/" in n}
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
    for name in SOURCES:
        assert name in in_sdist, sorted(in_sdist)
        assert name in in_wheel, sorted(in_wheel)
    # The wheel was compiled from the sdist alone: the header was enough for both extensions.
    for ext in ("unik_tcpip/_fastpath.", "unik_tcpip/tcp/_predict."):
        assert any(n.startswith(ext) and n.endswith(".so") for n in in_wheel), sorted(in_wheel)
