"""The generated ``main.py``: plain, readable Python that wires the plan together.

Like MirageOS's generated ``main.ml``, it is meant to be read and debugged: one import
per implementation, one line per device in connect order (each with a comment saying
which provider and distribution it comes from), then the call of the entry function.
Devices are disconnected in reverse order by :class:`unik.runtime.Devices`.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from .plan import Node, Plan
from .project import BUILD_DIR
from .provider import KeyRef


def _identifier(name: str, taken: set[str]) -> str:
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit() or keyword.iskeyword(ident):
        ident = "dev_" + ident
    base, n = ident, 2
    while ident in taken:
        ident, n = f"{base}_{n}", n + 1
    taken.add(ident)
    return ident


def _key_expr(ref: KeyRef, device: str) -> str:
    if ref.per_device:
        return f"keys.get({ref.key!r}, device={device!r})"
    return f"keys.get({ref.key!r})"


def _call(prefix: str, args: list[str], indent: str) -> str:
    """``prefix(args)`` on one line, or one argument per line when too long."""
    line = f"{indent}{prefix}({', '.join(args)})"
    if len(line) <= 100:
        return line
    inner = "".join(f"{indent}    {a},\n" for a in args)
    return f"{indent}{prefix}(\n{inner}{indent})"


def _keys_literal(plan: Plan) -> str:
    data = plan.keys.to_json()
    keys = "".join(f"        {k!r},\n" for k in data["keys"])
    return f"KeyValues.from_json({{\n    'keys': [\n{keys}    ],\n    'values': {data['values']!r},\n}})"


def generate_main(plan: Plan) -> str:
    """The source of ``main.py`` for ``plan``."""
    taken = {"runtime", "KeyValues", "KEYS", "EVENT_LOOP", "main", "keys", "devices"}
    imports: dict[str, str] = {}  # implementation -> local class name
    by_module: dict[str, list[str]] = {}
    for node in plan.nodes:
        if node.implementation in imports:
            continue
        module, cls = node.implementation.split(":")
        local = _identifier(cls, taken)
        imports[node.implementation] = local
        by_module.setdefault(module, []).append(cls if local == cls else f"{cls} as {local}")
    loop_node = next((node for node in plan.nodes if node.event_loop), None)
    event_loop = "None"
    if loop_node is not None:
        module, cls = loop_node.event_loop.split(":")
        event_loop = _identifier(cls, taken)
        by_module.setdefault(module, []).append(cls if event_loop == cls else f"{cls} as {event_loop}")
    entry = _identifier("application" if plan.app.served else plan.app.function, taken)
    alias = f" as {entry}" if entry != plan.app.function else ""
    if plan.app.served:
        from .serve import server_class  # asyncio and ssl: only for served applications

        server_cls = server_class(plan.app.served, plan.keys)
        by_module.setdefault("unik.serve", []).append(server_cls)
        server = _identifier("server", taken)
    lines_import = [f"from {m} import {', '.join(sorted(names))}" for m, names in sorted(by_module.items())]
    comment = f"  # the {plan.app.served} application ([tool.unik] {plan.app.served})" if plan.app.served else ""
    lines_import.append(f"from {plan.app.module} import {plan.app.function}{alias}{comment}")

    variables: dict[str, str] = {}
    body: list[str] = []
    for node in plan.nodes:
        var = _identifier(node.name, taken)
        variables[node.name] = var
        body.append(f"        # {node.name}: {node.kind} from {node.distribution} ({node.provider})")
        body.append(_call(f"{var} = await devices.connect", _args(node, imports, variables), "        "))
        if node is loop_node:
            body.append(f"        {event_loop}.attach_running({var})  # asyncio's network methods now use {var}")
    if plan.app.served:
        body.append("        # devices.started() (the life-cycle's STARTED: spt seals the process then) is called")
        body.append("        # by the server once it listens, after the application's start-up (which may import).")
    else:
        body.append("        devices.started()  # every device connected: the life-cycle's STARTED")
    call_args = [f"{param}={variables[dev]}" for param, dev in plan.app.devices]
    settings = [f"{param}=keys.get({key!r})" for param, key in plan.app.settings if key != "server"]
    prologue: list[str] = []
    if plan.app.served:
        prologue = [
            "    # The server, and what it loads lazily, made before the devices connect (a sandbox seals then).",
            _call(f"{server} = {server_cls}", [entry, *settings], "    "),
        ]
        body.append(_call(f"return await {server}.serve", [*call_args, "started=devices.started"], "        "))
    else:
        body.append(_call(f"return await {entry}", call_args + settings, "        "))

    header = (
        f'"""{plan.app.name} for the {plan.target} target.\n\n'
        f"Generated by `unik configure -t {plan.target}` (unik {plan.unik_version}) from\n"
        f"the project's pyproject.toml.\n"
        f"`unik configure` rewrites this file: edit the application or its [tool.unik] table instead.\n"
        f'"""\n'
    )
    return "\n".join([
        header,
        "from unik import runtime",
        "from unik.keys import KeyValues",
        *_startup_lines(plan),
        "",
        "# Tracebacks name these files, where they were built from (in the project's directory, which",
        "# `unik run` passes as UNIK_PROJECT_ROOT where it can), rather than their copies here.",
        _call("runtime.name_sources", ["__file__", repr(_sources(plan))], ""),
        "",
        *lines_import,
        "",
        "# Keys as configured; `python main.py --help` lists them, options override them.",
        f"KEYS = {_keys_literal(plan)}",
        *_event_loop_lines(plan, loop_node, event_loop),
        "",
        "",
        "async def main(keys: KeyValues) -> object:",
        '    """Connect the devices in dependency order, then run the application."""',
        *_host_network_lines(plan),
        *prologue,
        "    async with runtime.Devices() as devices:",
        *body,
        "",
        "",
        'if __name__ == "__main__":',
        *_syntax_lines(plan),
        _call("    runtime.main", ["main", "KEYS", "__file__", f"devices={_takers(plan)!r}", "event_loop=EVENT_LOOP",
                                    *_syntax_argument(plan)], ""),
        "",
    ])


def _syntax_lines(plan: Plan) -> list[str]:
    """Imports of the command-line dialects the artifact reads besides unik's (``plan.argv_syntax``)."""
    if not plan.argv_syntax:
        return []
    lines = ["    # The command line also reads these plugins' dialects (solo5's --net:service=tap0), as `unik` does."]
    for i, ref in enumerate(plan.argv_syntax):
        module, function = ref.split(":")
        lines.append(f"    from {module} import {function} as _syntax{i}")
    return lines


def _syntax_argument(plan: Plan) -> list[str]:
    """``syntax=(_syntax0,)`` for :func:`unik.runtime.main`, when the plan has dialects."""
    names = [f"_syntax{i}" for i in range(len(plan.argv_syntax))]
    return [f"syntax=({', '.join(names)},)"] if names else []


def _event_loop_lines(plan: Plan, node: Node | None, local: str) -> list[str]:
    """``EVENT_LOOP = ...``: the loop the application runs on, with a comment saying whose it is."""
    if node is None:
        return ["# The event loop: asyncio's own (no device of this plan brings one).", "EVENT_LOOP = None"]
    return [f"# The event loop: asyncio's, with its network methods on device {node.name!r} "
            f"({node.distribution}: {node.event_loop}).",
            f"EVENT_LOOP = {local}"]


def _startup_lines(plan: Plan) -> list[str]:
    """The target's start-up modules (:attr:`unik.target.Target.startup`), one commented import each."""
    return [f"import {module}  # noqa: F401 - {plan.target} target: {why}" for module, why in plan.startup]


def _host_network_lines(plan: Plan) -> list[str]:
    """The call refusing the host's sockets on a target without a host network (:mod:`unik.hostsockets`)."""
    if plan.host_network:
        return []
    return [f"    runtime.refuse_host_sockets({plan.target!r})  # no host network: the socket module's calls fail"]


def _takers(plan: Plan) -> dict[str, tuple[str, ...]]:
    """The devices that read each per-device key (an option binding another device is refused)."""
    out: dict[str, list[str]] = {}
    for node in plan.nodes:
        for ref in node.key_options.values():
            if ref.per_device and node.name not in out.setdefault(ref.key, []):
                out[ref.key].append(node.name)
    return {key: tuple(names) for key, names in sorted(out.items())}


def _sources(plan: Plan) -> dict[str, str]:
    """The application's package (or module) and ``main.py`` by name in the artifact, with their paths in the project.

    Relative to the project's directory: where the project is does not go into the artifact.
    """
    root = Path(plan.app.root)
    out: dict[str, str] = {}
    for top in plan.app.packages:
        for directory in plan.app.source_dirs:
            package, module = Path(directory) / top, Path(directory) / f"{top}.py"
            if package.is_dir() or module.is_file():
                found = package if package.is_dir() else module
                out[top if package.is_dir() else module.name] = _in_project(found, root)
                break
    out["main.py"] = f"{BUILD_DIR}/{plan.target}/main.py"
    return out


def _in_project(path: Path, root: Path) -> str:
    """``path`` relative to the project's directory ``root`` (as it is when outside it)."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _args(node: Node, imports: dict[str, str], variables: dict[str, str]) -> list[str]:
    args = [repr(node.name), imports[node.implementation]]
    args += [f"{role}={variables[dep]}" for role, dep in node.deps.items()]
    args += [f"{k}={v!r}" for k, v in node.options.items()]
    args += [f"{k}={_key_expr(ref, node.name)}" for k, ref in node.key_options.items()]
    return args
