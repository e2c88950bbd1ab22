"""spt's life: run -d, ps, logs, stop (SIGTERM to the sealed process: its shutdown handled under the filter)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from lifecycle_support import unik, wait_for_log
from solo5_support import make_app, need_sandbox
from unik.instances import process_start

HELD = '''
lifecycle.subscribe(lifecycle.SHUTDOWN_REQUESTED, lambda: console.log("shutdown requested"))
console.log("held until stopped")
await asyncio.Event().wait()
'''


def test_a_sealed_application_runs_detached_and_stops_gracefully(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "held", HELD, header="import asyncio\nfrom unik import lifecycle\n")
    state = tmp_path / "state"
    unik(app, "configure", "-t", "spt", state=state)
    assert unik(app, "run", "-d", state=state).stdout == "held\n"
    wait_for_log(app, "held", "held until stopped", state, timeout=60)
    record = json.loads(unik(app, "ps", "--json", state=state).stdout)[0]
    tender = record["details"]["tender_pid"]
    assert record["target"] == "spt" and process_start(tender) is not None
    assert "held stopped" in unik(app, "stop", "held", state=state).stderr
    log = unik(app, "logs", "held", state=state).stdout
    assert "shutdown requested" in log and "killed by the sandbox" not in log
    assert json.loads(unik(app, "ps", "--json", state=state).stdout)[0]["shown_state"] == "exited (143)"
    assert process_start(tender) is None


def test_dry_run_prints_the_tender_command(tmp_path: Path) -> None:
    app = make_app(tmp_path, "dry", "return 0")
    unik(app, "configure", "-t", "spt", state=tmp_path / "state")
    words = shlex.split(unik(app, "run", "--dry-run", state=tmp_path / "state").stdout)
    assert words[0] == "UNIK_PROG=dry-spt" and words[1].endswith("unik-spt")
    assert words[words.index("--") + 1:][-1].endswith("app/__spt__.py")
