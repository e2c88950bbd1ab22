"""What the ``unik`` command loads before it starts a target: only what the command needs.

These guard the start-up time of ``unik run`` (part of the boot benchmark) by structure,
not by timing: which modules a command imports, and that the caches that spare it
reading every distribution's metadata are used and invalidated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from core_support import MakeApp
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from unik import project as project_module
from unik.plugins import _api_in, entry_points
from unik.testing import PluginRegistry, install_entry_point
from unik.version import API_VERSION

HERE = Path(__file__).parent

#: Modules of the build and configure paths, and slow imports no command needs up front.
NOT_AT_START = {
    "asyncio", "importlib.metadata", "packaging.specifiers", "packaging.requirements", "tomllib",
    "unik.application", "unik.codegen", "unik.compose", "unik.describe", "unik.devices",
    "unik.project", "unik.scaffold",
}
#: Modules ``unik run`` of a configured, built application does not need.
NOT_ON_RUN = {"tomllib", "unik.codegen", "unik.compose", "unik.describe", "unik.scaffold"}

APP = """
from unik.devices import Console, Stack

async def start(stack: Stack, console: Console, *, status: int = 0) -> int:
    return status
"""


def modules_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded by a fresh interpreter after running ``code``."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_command_modules() -> None:
    loaded = modules_after("import unik.cli")
    assert not loaded & NOT_AT_START


def test_run_loads_neither_the_composer_nor_the_application(make_app: MakeApp, tmp_path: Path) -> None:
    root = make_app(APP)
    env = {"UNIK_LOAD_PLUGINS": "fake", "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path[1:]]),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    main = f"from unik.cli import main\nassert main(['-C', {str(root)!r}, '-q', '{{}}']) == 0"
    configure = main.replace("'{}'", "'configure', '-t', 'fake'")
    modules_after(configure + "\n" + main.replace("'{}'", "'build'"), env)
    loaded = modules_after(main.replace("'{}'", "'run', '--mem', '512M'"), env)
    assert not loaded & NOT_ON_RUN
    assert "demo_app" not in loaded  # its keys are not needed to parse --mem
    with_key = modules_after(main.replace("'{}'", "'run', '--status', '0'"), env)
    assert {"tomllib", "tomli"} & with_key  # an application key: the application is loaded to parse it


def test_entry_points_are_cached_until_metadata_changes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_entry_point(site, "unik-cached", "cached", "cached_plugin")
    past = time.time() - 60
    for path in [site, *site.rglob("*")]:
        os.utime(path, (past, past))
    env = {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = "from unik.plugins import entry_points\nprint([e.name for e in entry_points()])"
    first = modules_after(code, env)
    assert "importlib.metadata" in first
    second = modules_after(code, env)
    assert "importlib.metadata" not in second  # the answer came from the cache
    install_entry_point(site, "unik-other", "other", "other_plugin")
    script = "from unik.plugins import entry_points\nprint(sorted(e.name for e in entry_points()))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    assert {"cached", "other"} <= set(json.loads(out.stdout.replace("'", '"')))


def test_entry_points_match_importlib_metadata() -> None:
    from importlib import metadata

    expected = [(ep.name, ep.value, ep.dist.name if ep.dist else "") for ep in metadata.entry_points(group="unik")]
    assert [(ep.name, ep.value, ep.dist) for ep in entry_points()] == expected


@pytest.mark.parametrize("api", [
    ">=1.0,<2", ">=0.1,<1", ">=1", "==1.0", "==1", "!=1.0", ">1.0", "<1.0.1", ">=1.0,<2,", "==1.*",
    "~=1.0", "<=1", " >= 1.0 , < 2 ", ">=1.0.0.0",
])
def test_api_ranges_are_judged_as_packaging_does(api: str) -> None:
    assert _api_in(api) == (Version(API_VERSION) in SpecifierSet(api))


def test_invalid_api_range() -> None:
    assert _api_in("bogus") is None


def test_inputs_digest_is_remembered_and_invalidated(
    registry: PluginRegistry, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project_module, "settled", lambda stamp: True)
    root = make_app(APP)
    project = registry.project(root)
    config = project.configure("fake", {})
    past = time.time() - 60
    for path in [root, *root.rglob("*")]:
        os.utime(path, (past, past))
    digest = project.inputs_digest(config)
    assert json.loads((config.directory / project_module.INPUTS).read_text())["digest"] == digest
    assert project.inputs_digest(config) == digest

    init = root / "src" / "demo_app" / "__init__.py"
    init.write_text(init.read_text() + "# changed\n")
    changed = project.inputs_digest(config)
    assert changed != digest
    (root / "src" / "demo_app" / "extra.py").write_text("X = 1\n")
    added = project.inputs_digest(config)
    assert added not in (digest, changed)
    (config.directory / project_module.INPUTS).unlink()
    assert project.inputs_digest(config) == added  # the same as computed from scratch


LAZY = '''
from unik.hookspecs import hookimpl
UNIK_API = ">=1.0,<2"
'''
LAZY_COMMAND = LAZY + '''
@hookimpl
def unik_add_commands(subparsers):
    subparsers.add_parser("lazy-hello", help="a command of the lazy plugin")
'''


def test_help_loads_only_the_plugins_that_add_commands(tmp_path: Path) -> None:
    """Which hooks each plugin implements is remembered: `unik --help` imports no target's plugin."""
    for needed in ("unik_unix", "unik_virtio", "unik_fat", "unik_tls"):
        pytest.importorskip(needed, reason=f"needs {needed} installed (make venv installs every plugin)")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = "from unik.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    first = modules_after(code, env)  # nothing remembered yet: every plugin loads
    assert {"unik_unix.plugin", "unik_virtio.plugin", "unik_fat.plugin"} <= first
    second = modules_after(code, env)
    assert "unik_fat.plugin" in second and "unik_tls.plugin" in second  # they add `unik fat`, `unik tls`
    assert not {m for m in second if m.split(".")[0] in ("unik_unix", "unik_virtio", "unik_xen", "unik_solo5")}


def test_a_changed_plugin_is_loaded_again(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    module = site / "lazy_plugin.py"
    module.write_text(LAZY)
    install_entry_point(site, "unik-lazy", "lazy", "lazy_plugin")
    past = time.time() - 60
    for path in [site, *site.rglob("*")]:
        os.utime(path, (past, past))
    env = {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache"), "UNIK_LOAD_PLUGINS": "lazy"}
    code = "from unik.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert "lazy_plugin" in modules_after(code, env)  # not remembered yet
    assert "lazy_plugin" not in modules_after(code, env)  # remembered: it adds no command
    module.write_text(LAZY_COMMAND)  # edited in place, as in an editable install
    os.utime(module, (past + 1, past + 1))
    out = subprocess.run([sys.executable, "-m", "unik.cli", "--help"], capture_output=True, text=True,
                         env={**os.environ, **env})
    assert "lazy-hello" in out.stdout, out.stderr


#: What a command for one target may import of solo5's: its plugin module and dialect (applied to every command line).
SOLO5_DIALECT = {"unik_solo5", "unik_solo5.plugin", "unik_solo5.syntax"}


def _target_modules(loaded: set[str]) -> dict[str, set[str]]:
    """The modules of each target plugin and of the VM toolkit among ``loaded``."""
    tops = ("unik_unix", "unik_virtio", "unik_xen", "unik_solo5", "unik_vmimage")
    return {top: {m for m in loaded if m.split(".")[0] == top} for top in tops}


def test_a_command_for_one_target_imports_no_other_targets_code(tmp_path: Path) -> None:
    """`configure -t unix` and `run` of a unix build load unix's plugin, not virtio's, xen's or the VM toolkit."""
    for needed in ("unik_unix", "unik_virtio", "unik_xen", "unik_solo5", "unik_vmimage"):
        pytest.importorskip(needed, reason=f"needs {needed} installed (make venv installs every plugin)")
    import shutil

    hello = tmp_path / "hello"
    shutil.copytree(HERE.parents[1] / "examples" / "hello", hello,
                    ignore=shutil.ignore_patterns("_build", "dist", "__pycache__", "*.egg-info"))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}

    def command(*argv: str) -> set[str]:
        return modules_after(f"from unik.cli import main\nassert main({['-C', str(hello), '-q', *argv]!r}) == 0", env)

    command("configure", "-t", "unix")  # the first command remembers what each plugin registers
    command("build")
    for argv in (("configure", "-t", "unix"), ("run", "--count", "1"), ("run",)):
        found = _target_modules(command(*argv))
        assert not found["unik_virtio"] | found["unik_xen"] | found["unik_vmimage"], argv
        assert found["unik_solo5"] <= SOLO5_DIALECT, argv
        assert "unik_unix.target" in found["unik_unix"], argv
    found = _target_modules(command("configure", "-t", "virtio"))
    assert {"unik_virtio.target", "unik_virtio.providers"} <= found["unik_virtio"]
    assert not found["unik_xen"] and not found["unik_unix"] and found["unik_solo5"] <= SOLO5_DIALECT


#: What a build needs and `unik run` of a built hvt or spt artifact does not.
BUILD_ONLY = {"py_compile", "unik.bundle", "unik.pydeps", "unik.reproducible", "unik_solo5.hvtfs",
              "unik_solo5.hvt_stdlib", "unik_solo5.root", "unik_solo5.memory", "unik_solo5.syscalls"}


def test_solo5_targets_register_without_their_build_code(tmp_path: Path) -> None:
    """`unik run -t hvt` loads solo5's targets and the keys of hvt's plan, not the linker's or the bundle's code."""
    pytest.importorskip("unik_solo5", reason="needs unik_solo5 installed (make venv installs every plugin)")
    code = ("from unik.plugins import PluginManager\npm = PluginManager()\n"
            "assert type(pm.target('hvt')).PLUGIN_NAME == 'hvt'\nassert 'mem' in pm.keys('hvt', run=True)")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    modules_after(code, env)  # remembers what each plugin registers
    loaded = modules_after(code, env)
    assert {"unik_solo5.hvt_target", "unik_solo5.target"} <= loaded
    assert not {m for m in loaded if m.split(".")[0] in ("unik_unix", "unik_virtio", "unik_xen", "unik_vmimage")}
    assert not loaded & BUILD_ONLY, loaded & BUILD_ONLY


def test_the_providers_kind_check_knows_every_kind() -> None:
    """The kind check's names (``unik.provider.KIND_NAMES``) are the device protocols' (``unik.devices.KINDS``)."""
    from unik.devices import KINDS
    from unik.provider import KIND_NAMES

    assert set(KINDS) == KIND_NAMES


def test_running_a_solo5_target_imports_no_device_protocols(tmp_path: Path) -> None:
    """What `unik run -t hvt` (or spt) loads and checks, its providers too, imports neither the device protocols
    (``unik.devices``: asyncio's and typing's machinery) nor ``platform``: the monitor starts sooner (issue 22)."""
    pytest.importorskip("unik_solo5", reason="needs unik_solo5 installed (make venv installs every plugin)")
    code = ("from unik.plugins import PluginManager\npm = PluginManager()\n"
            "for name in ('hvt', 'spt'):\n    pm.target(name)\n    assert pm.providers(name)\n"
            "    assert 'mem' in pm.keys(name, run=True)")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    modules_after(code, env)  # remembers what each plugin registers
    loaded = modules_after(code, env)
    assert {"unik_solo5.hvt_target", "unik_solo5.providers"} <= loaded
    assert not loaded & {"unik.devices", "asyncio", "platform"}, loaded & {"unik.devices", "asyncio", "platform"}
