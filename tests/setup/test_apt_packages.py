"""The one list of Debian packages (.ci/apt-packages), `make deps` (tools/apt-deps) and the skip hints.

On a fresh Debian 12 machine `make test` installs the list as root, or, not root, says once
which packages are missing and the command that installs them; a test that skips for a
missing command names the package that provides it, from the same list.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_tools import APT_PACKAGES, missing, package_for, packages

REPO = Path(__file__).resolve().parents[2]
APT_DEPS = REPO / "tools" / "apt-deps"
#: Where hints that name Debian packages live (error messages, skip reasons, docs).
HINT_SOURCES = ("core", "plugins", "tests", "bench", "tools", "README.md")


def _simulate_install(names: list[str]) -> subprocess.CompletedProcess[str]:
    """``apt-get install -s``: resolves names (virtual ones too) against the package lists, installs nothing."""
    return subprocess.run(["apt-get", "install", "-s", "--no-install-recommends", *names],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, LC_ALL="C"))


def _hinted_packages() -> set[str]:
    """Every package named by an ``apt-get install ...`` hint in the sources (templated ones left out)."""
    found: set[str] = set()
    files = [p for s in HINT_SOURCES for p in ([REPO / s] if (REPO / s).is_file() else (REPO / s).rglob("*"))
             if p.suffix in (".py", ".md") and not {"_build", "dist", "build"} & set(p.parts)]
    for path in files:
        for match in re.finditer(r"apt-get install ([a-z0-9][a-z0-9.+ -]*)", path.read_text(errors="replace")):
            found.update(w for w in match.group(1).split() if not w.startswith("-") and w not in ("or", "as"))
    return found


def test_the_list_names_real_packages_and_hints_name_listed_commands() -> None:
    assert "iputils-ping" in packages() and package_for("ping") == "iputils-ping"
    assert package_for("dot") == "graphviz" and package_for("qemu-system-x86_64") == "qemu-system-x86"
    assert [p for p, tags in packages().items() if "@venv" in tags] == []  # tags are not commands
    with pytest.raises(LookupError, match=r"names no package providing `no-such-tool`: add it"):
        package_for("no-such-tool")


def test_a_missing_command_names_its_package() -> None:
    assert missing("dpkg-deb") is None or shutil.which("dpkg-deb") is None
    os_path = os.environ["PATH"]
    try:
        os.environ["PATH"] = "/nonexistent"
        assert missing("ping") == "ping is not installed (apt-get install iputils-ping, or `make deps` as root)"
        assert missing("mkfs.fat", "mdir", "dot") == (
            "mkfs.fat, mdir, dot are not installed (apt-get install dosfstools graphviz mtools, "
            "or `make deps` as root)")
    finally:
        os.environ["PATH"] = os_path


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="not a Debian system (no apt-get)")
def test_every_package_the_list_and_the_hints_name_exists() -> None:
    names = sorted(set(packages()) | _hinted_packages())
    assert "iputils-ping" in names and "ping" not in names
    proc = _simulate_install(names)
    unknown = re.findall(r"Unable to locate package (\S+)", proc.stderr)
    assert proc.returncode == 0 and not unknown, f"not Debian packages: {unknown}\n{proc.stderr[-2000:]}"


def _alternative(tool: str) -> bool:
    """Whether ``tool`` is a link the alternatives system manages (``cc`` -> gcc), which dpkg -L does not list."""
    path = shutil.which(tool)
    return path is not None and os.path.islink(path) and os.readlink(path).startswith("/etc/alternatives/")


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system (no dpkg)")
def test_each_listed_command_comes_from_its_package() -> None:
    wrong = []
    for package, tools in packages().items():
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
        if listed.returncode != 0:
            continue  # not installed here: the test above vouches that it exists
        names = {Path(line).name for line in listed.stdout.splitlines() if "/bin/" in line or "/sbin/" in line}
        wrong += [f"{tool} ({package})" for tool in tools if tool not in names and not _alternative(tool)]
    assert not wrong, f"commands their package does not install: {wrong}"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can read (pytest's tmp_path is private to us)."""
    path = Path(tempfile.mkdtemp(prefix="unik-apt-deps-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _apt_deps(tmp_path: Path, lines: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run tools/apt-deps on a list of its own, as an unprivileged user when we are root.

    The script is copied beside the list: the checkout may sit where that user cannot go (/root).
    """
    listing = tmp_path / "apt-packages"
    listing.write_text(lines)
    listing.chmod(0o644)
    script = tmp_path / "tools" / "apt-deps"
    script.parent.mkdir(exist_ok=True)
    shutil.copy(APT_DEPS, script)
    script.chmod(0o755)
    script.parent.chmod(0o755)
    cmd = [str(script), *args]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "UNIK_APT_PACKAGES": str(listing)})


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system (no dpkg-query)")
def test_apt_deps_not_root_says_once_what_is_missing_and_the_command_then_goes_on(shared_dir: Path) -> None:
    proc = _apt_deps(shared_dir, "# comment\ndpkg  @venv dpkg-deb\nunik-no-such-package  foo\nbash\n")
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"tools/apt-deps: 1 Debian package(s) from {shared_dir / 'apt-packages'} are missing: unik-no-such-package",
        "tools/apt-deps: install them with:  sudo apt-get update && sudo apt-get install -y "
        "--no-install-recommends unik-no-such-package",
        "tools/apt-deps: going on without them: the tests that need them skip, naming the package",
    ]
    check = _apt_deps(shared_dir, "dpkg\nunik-no-such-package\n", "--check")
    assert check.returncode == 1 and "missing Debian packages: unik-no-such-package" in check.stderr
    # --venv: only the @venv lines; --rest: only the others (make deps runs both: each package said once)
    venv = _apt_deps(shared_dir, "unik-no-such-venv  @venv\nunik-no-such-package\n", "--venv")
    assert venv.returncode == 0 and "are missing: unik-no-such-venv\n" in venv.stderr
    rest = _apt_deps(shared_dir, "unik-no-such-venv  @venv\nunik-no-such-package\n", "--rest")
    assert rest.returncode == 0 and "are missing: unik-no-such-package\n" in rest.stderr


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system (no dpkg-query)")
def test_apt_deps_is_silent_and_quick_when_everything_is_installed(shared_dir: Path) -> None:
    proc = _apt_deps(shared_dir, "dpkg  dpkg-deb\nbash\ncoreutils\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert APT_PACKAGES.is_file()


def test_skip_hints_in_the_tests_come_from_the_list() -> None:
    # A hand-written "apt-get install X" in a skip reason drifts from the list (`ping` named a
    # package that does not exist): tests use host_tools.needs/require/missing instead.
    hand_written = []
    for path in (REPO / "tests").rglob("*.py"):
        if path.name in ("host_tools.py", "test_apt_packages.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "apt-get install" in line and ("skip" in line or "reason" in line or "is not installed" in line):
                hand_written.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert hand_written == []
