from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from unik.testing import PluginRegistry, install_entry_point

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import fake_plugin  # noqa: E402
from core_support import MakeApp  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def fake_distribution(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Metadata of an installed distribution "fake" owning fake_plugin, so emitters can bundle it."""
    site = tmp_path_factory.mktemp("site")
    install_entry_point(site, "fake", "fake", "fake_plugin", top_level=["fake_plugin"])
    sys.path.append(str(site))
    return site


@pytest.fixture
def registry() -> PluginRegistry:
    """A plugin manager holding the fake target and library."""
    fake_plugin.LOG.clear()
    return PluginRegistry().add(fake_plugin, "fake")


@pytest.fixture
def make_app(tmp_path: Path) -> MakeApp:
    """Write an application: ``make_app(source, toml="", name="demo")`` returns its root."""
    counter = iter(range(1000))

    def make(source: str, toml: str = "", name: str = "demo", main: str = "start") -> Path:
        root = tmp_path / f"{name}{next(counter)}"
        pkg = root / "src" / f"{name}_app"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(textwrap.dedent(source))
        (root / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "1.0"\n\n[tool.unik]\nmain = "{name}_app:{main}"\n'
            + textwrap.dedent(toml)
        )
        return root

    return make
