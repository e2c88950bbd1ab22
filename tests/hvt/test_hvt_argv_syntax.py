"""An hvt guest reads solo5's ``--net:service=tap0`` after ``--`` as ``unik run`` does: the plan carries the dialect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

UNIK = str(Path(sys.executable).with_name("unik"))
SOURCE = """\
from unik.devices import Console, Network


async def start(service: Network, console: Console) -> None:
    console.log("up")
"""


@pytest.fixture(scope="module")
def net_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("syntax") / "netapp"
    (root / "src" / "netapp_app").mkdir(parents=True)
    (root / "src" / "netapp_app" / "__init__.py").write_text(SOURCE)
    (root / "pyproject.toml").write_text('[project]\nname = "netapp"\nversion = "0.1"\n\n'
                                         '[tool.unik]\nmain = "netapp_app:start"\n')
    for target in ("hvt", "unix"):
        subprocess.run([UNIK, "configure", "-t", target], cwd=root, capture_output=True, text=True, timeout=120,
                       check=True)
    return root


def _guest_main(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The generated main.py of the hvt guest, run on the host: its command line is parsed before any device."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([sys.executable, str(root / "_build" / "hvt" / "main.py"), *args], cwd=root,
                          capture_output=True, text=True, timeout=60, env=env)


def test_the_hvt_plan_carries_solo5_s_dialect_and_main_reads_it(net_app: Path) -> None:
    plan = json.loads((net_app / "_build" / "hvt" / "plan.json").read_text())
    assert plan["argv_syntax"] == ["unik_solo5.syntax:solo5_syntax"]
    assert "from unik_solo5.syntax import solo5_syntax as _syntax0" in (net_app / "_build/hvt/main.py").read_text()
    proc = _guest_main(net_app, "--net:service=tap0")
    # parsed: the binding reached the device, which looks for the monitor's /dev/hvt/net/service
    assert proc.returncode == 1, proc.stderr
    assert "network device 'service': the monitor has no such device" in proc.stderr
    proc = _guest_main(net_app, "--net:stroage=tap0")
    assert proc.returncode == 2
    assert "--net: stroage=...: this application has no device 'stroage'" in proc.stderr


def test_a_plan_without_the_dialect_s_code_does_not_name_it(net_app: Path) -> None:
    # the unix artifact carries no unik-target-solo5, so its main.py cannot import the dialect
    plan = json.loads((net_app / "_build" / "unix" / "plan.json").read_text())
    assert "unik-target-solo5" not in plan["distributions"] and "argv_syntax" not in plan
