"""What spt lets through: forged reports, the caller's environment, memory, a blocking sleep."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from solo5_support import TIMEOUT, UNIK, build, make_app, need_sandbox, unik
from unik_solo5.policy import markdown

README = Path(__file__).resolve().parents[2] / "plugins" / "solo5" / "README.md"

FORGER = '''\
import os

# At import time, before the filter: every descriptor this process holds gets a report
# that looks like the one unik run prints for a refused call.
FORGED = b"41 socket\\n"
HELD = []
for fd in range(3, 256):
    try:
        os.write(fd, FORGED)
        HELD.append(fd)
    except OSError:
        pass
'''


def test_a_forged_report_is_not_believed(tmp_path: Path) -> None:
    need_sandbox()
    body = 'console.log(f"wrote to {HELD}")\nprint("41 socket", flush=True)\nreturn 0\n'
    app = make_app(tmp_path, "forger", body, header=FORGER)
    build(app)
    proc = unik(app, "run", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "killed by the sandbox" not in proc.stderr
    # Only the devices' descriptors reach the application (it has none): no report pipe.
    assert proc.stdout.splitlines()[0] == "wrote to []", proc.stdout


def test_a_real_refusal_is_reported_even_when_the_application_lies_first(tmp_path: Path) -> None:
    need_sandbox()
    body = 'print("0 exit_group", flush=True)\nimport os\nos.getppid()\n'
    app = make_app(tmp_path, "liar", body, header=FORGER)
    build(app)
    proc = unik(app, "run", check=False)
    assert proc.returncode == 128 + 31, proc.stderr
    assert "killed by the sandbox: system call getppid (110)" in proc.stderr


def test_the_callers_environment_does_not_reach_the_application(tmp_path: Path) -> None:
    need_sandbox()
    canary = f"canary-{os.getpid()}-a8f3"
    # At import time: the environment as execve gave it (no /proc under the read-only root).
    header = ('import os\nAT_IMPORT = b"\\0".join(k + b"=" + v for k, v in os.environb.items())\n'
              'CWD = os.getcwd()\n')
    body = (f'console.log("import " + ("LEAKED" if b"{canary}" in AT_IMPORT else "clean"))\n'
            f'console.log("sealed " + ("LEAKED" if any("{canary}" in v for v in os.environ.values()) else "clean"))\n'
            'console.log("keys " + ",".join(sorted(k for k in os.environ if k != "LC_CTYPE")))\n'
            'console.log("cwd " + CWD)\n')
    app = make_app(tmp_path, "canary", body, header=header)
    build(app)
    env = dict(os.environ, SPT_CANARY=canary, UNIK_TRACEBACK="1")
    proc = subprocess.run([UNIK, "run"], cwd=app, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "import clean", "sealed clean", "keys UNIK_PROG,UNIK_SPT_DEVICES,UNIK_SPT_MEM_MIB", "cwd /",
    ]
    assert canary not in proc.stdout + proc.stderr


def test_a_memory_hog_is_stopped_at_the_limit(tmp_path: Path) -> None:
    need_sandbox()
    body = ('hog = []\nfor i in range(64):  # 2 GiB at most\n'
            '    hog.append(bytearray(32 << 20))\n    console.log(f"{(i + 1) * 32} MiB")\n')
    app = make_app(tmp_path, "hog", body)
    build(app)
    proc = unik(app, "run", "--mem", "128M", check=False)
    assert proc.returncode == 1, proc.stderr
    grabbed = [int(line.split()[0]) for line in proc.stdout.splitlines()]
    assert grabbed and max(grabbed) < 128, proc.stdout  # CPython's own address space counts
    assert "out of memory: the application reached its memory limit (--mem 128 MiB" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The default (256M, as the VM targets) lets more through, and a bad size is refused before the start.
    proc = unik(app, "run", check=False)
    assert proc.returncode == 1 and 128 < max(int(line.split()[0]) for line in proc.stdout.splitlines()) < 256
    proc = unik(app, "run", "--mem", "lots", check=False)
    assert proc.returncode != 0 and "is not a memory size" in proc.stderr and not proc.stdout


def test_a_blocking_sleep_is_allowed(tmp_path: Path) -> None:
    need_sandbox()
    app = make_app(tmp_path, "nap", 'time.sleep(0.05)\nconsole.log("slept")\n', header="import time")
    build(app)
    assert unik(app, "run").stdout == "slept\n"


def test_show_policy_lists_what_the_process_inherits_and_the_readme_has_the_same_tables(tmp_path: Path) -> None:
    app = make_app(tmp_path, "pol2", "return 0")
    build(app)
    out = unik(app, "run", "--show-policy").stdout
    env = r"^  environment\s+UNIK_SPT_DEVICES, UNIK_PROG, UNIK_SPT_MEM_MIB, UNIK_SPT_FILES\s"
    assert re.search(env, out, re.M), out
    assert re.search(r"^  RLIMIT_AS\s+--mem MiB", out, re.M), out
    assert "prot lacks PROT_EXEC" in out and "advice == MADV_DONTNEED" in out
    assert re.search(r"^  clone3\s+any: fails with ENOSYS", out, re.M), out
    assert markdown() in README.read_text(), "regenerate the tables: python -m unik_solo5.policy"
