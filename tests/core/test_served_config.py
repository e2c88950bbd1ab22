"""Applications without an entry function (``[tool.unik] asgi``/``aiohttp``): loading, keys, errors, main.py."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from unik.application import Application
from unik.errors import BadKey, ConfigError, UnikError
from unik.scaffold import new_application
from unik.testing import PluginRegistry

APP = '''\
from starlette.applications import Starlette

app = Starlette()
'''


def _served(tmp_path: Path, tool: str, deps: str = '["starlette", "uvicorn"]', module: str = APP) -> Path:
    root = tmp_path / "api"
    (root / "src" / "api_app").mkdir(parents=True, exist_ok=True)
    (root / "src" / "api_app" / "__init__.py").write_text("")
    (root / "src" / "api_app" / "web.py").write_text(module)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "api"\nversion = "1.0"\ndependencies = {deps}\n\n[tool.unik]\n{textwrap.dedent(tool)}')
    return root


def test_asgi_application_has_a_stack_a_console_and_the_server_keys(tmp_path: Path) -> None:
    # starlette is not installed here: the module is read, not imported
    app = Application.load(_served(tmp_path, 'asgi = "api_app.web:app"') / "pyproject.toml")
    assert app.served == "asgi" and (app.module, app.function, app.package) == ("api_app.web", "app", "api_app")
    assert [(d.name, d.kind) for d in app.devices] == [("stack", "stack"), ("console", "console")]
    keys = {s.key.name: s.key for s in app.settings}
    assert keys["port"].default == "8000" and keys["workers"].default == "1"
    assert keys["server"].choices == ("uvicorn", "hypercorn") and keys["server"].stage == "configure"
    assert keys["access_log"].type == "bool"


def test_aiohttp_application_defaults_to_port_8080_and_has_no_server_choice(tmp_path: Path) -> None:
    module = "from aiohttp import web\n\ndef make_app():\n    return web.Application()\n"
    app = Application.load(_served(tmp_path, 'aiohttp = "api_app.web:make_app"', '["aiohttp"]', module)
                           / "pyproject.toml")
    keys = {s.key.name: s.key for s in app.settings}
    assert app.served == "aiohttp" and keys["port"].default == "8080" and "server" not in keys


@pytest.mark.parametrize(("tool", "key", "words"), [
    ('main = "api_app:start"\nasgi = "api_app.web:app"', "asgi", "main already says what runs"),
    ('source = "src"', "main", 'asgi = "module:app"'),
    ('asgi = "api_app.web"', "asgi", 'not "module:attribute"'),
    ('asgi = "api_app.nothere:app"', "asgi", "there is no module 'api_app.nothere'"),
    ('asgi = "api_app.web:ap"', "asgi", "does not define 'ap' at its top level (did you mean 'app'?)"),
])
def test_served_configuration_errors_name_file_table_and_key(tmp_path: Path, tool: str, key: str, words: str) -> None:
    root = _served(tmp_path, tool)
    with pytest.raises(ConfigError) as err:
        Application.load(root / "pyproject.toml")
    assert (err.value.file, err.value.table, err.value.key) == (str(root / "pyproject.toml"), "tool.unik", key)
    assert words in err.value.why


@pytest.mark.parametrize(("deps", "words"), [
    ('["fastapi", "uvloop>=0.19"]', "uvloop replaces asyncio's event loop"),
    ('["fastapi", "not a requirement!"]', "is not a requirement"),
])
def test_dependencies_refused_before_any_work(tmp_path: Path, deps: str, words: str) -> None:
    root = _served(tmp_path, 'asgi = "api_app.web:app"', deps)
    with pytest.raises(ConfigError) as err:
        Application.load(root / "pyproject.toml")
    assert (err.value.table, err.value.key) == ("project", "dependencies")
    assert words in err.value.why


def test_workers_is_refused_with_the_reason(registry: PluginRegistry, tmp_path: Path) -> None:
    project = registry.project(_served(tmp_path, 'asgi = "api_app.web:app"\n[tool.unik.targets.fake]\nnet = "host"\n'))
    with pytest.raises(BadKey, match=r"--workers: 4 workers cannot be: a unik application is one process"):
        project.configure("fake", {"workers": ["4"]})


def test_generated_main_makes_the_server_before_connecting_devices(registry: PluginRegistry, tmp_path: Path) -> None:
    root = _served(tmp_path, 'asgi = "api_app.web:app"\n[tool.unik.targets.fake]\nnet = "host"\n')
    main = registry.project(root).configure("fake", {}).directory / "main.py"
    text = main.read_text()
    ast.parse(text)
    assert "from unik.serve import Uvicorn" in text
    assert "from api_app.web import app as application  # the asgi application ([tool.unik] asgi)" in text
    made = text.index("    server = Uvicorn(\n        application,\n        port=keys.get('port'),")
    assert made < text.index("async with runtime.Devices() as devices:")
    assert "        return await server.serve(stack=stack, console=console, started=devices.started)" in text
    assert "        devices.started()  #" not in text  # the server calls it once it listens
    text = registry.project(root).configure("fake", {"server": ["hypercorn"]}).directory.joinpath("main.py").read_text()
    assert "from unik.serve import Hypercorn" in text and "server = Hypercorn(" in text


def test_template_asgi_scaffolds_a_fastapi_application(tmp_path: Path) -> None:
    root = new_application("myapi", tmp_path, "asgi")
    app = Application.load(root / "pyproject.toml")
    assert app.served == "asgi" and (app.module, app.function) == ("myapi.app", "app")
    assert {"fastapi", "uvicorn"} <= set(app.dependencies)
    source = (root / "src" / "myapi" / "app.py").read_text()
    assert "class Item(BaseModel)" in source and "background.add_task(record, item)" in source
    assert app.targets["virtio"]["net"] == "service=user"
    with pytest.raises(UnikError, match=r"there is no template 'asig' \(did you mean 'asgi'\?\)"):
        new_application("other", tmp_path, "asig")
