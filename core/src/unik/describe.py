"""Views of a plan: a text table and a Graphviz graph (``unik describe [--dot]``)."""

from __future__ import annotations

from .plan import Node, Plan


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(*lines: str) -> str:
    """A quoted dot label of ``lines``, each escaped, separated by dot's centred line break."""
    return '"' + "\\n".join(_quote(line)[1:-1] for line in lines) + '"'


def _key_summary(plan: Plan) -> str:
    parts = []
    for name in sorted(plan.keys.values):
        value = plan.keys.values[name]
        if value.value is not None:
            parts.append(f"{name}={value.value}")
        parts += [f"{name} {d}={v}" for d, v in sorted(value.devices.items())]
    return ", ".join(parts)


def _node_label(plan: Plan, node: Node) -> str:
    lines = [node.name, f"{node.kind}: {node.provider}", node.distribution]
    for opt, value in node.options.items():
        lines.append(f"{opt}={value}")
    for opt, ref in node.key_options.items():
        value = plan.keys.raw(ref.key, node.name if ref.per_device else None)
        lines.append(f"{opt}=--{ref.key.replace('_', '-')} ({value})")
    return _label(*lines)


def to_dot(plan: Plan) -> str:
    """The device graph as Graphviz ``dot`` source: edges go from user to dependency."""
    app_id = f"{plan.app.module}:{plan.app.function}"
    keys = _key_summary(plan)
    title = [f"{plan.app.name} on {plan.target} ({plan.target_distribution})"]
    if keys:
        title.append(f"keys: {keys}")
    out = [
        "digraph unik {",
        f"  label={_label(*title)};",
        "  labelloc=t;",
        "  node [shape=box, style=rounded, fontname=Helvetica];",
        "  edge [fontname=Helvetica, fontsize=10];",
        f"  {_quote(app_id)} [shape=box, style=\"rounded,bold\", label={_label(app_id, 'application')}];",
    ]
    for node in plan.nodes:
        out.append(f"  {_quote(node.name)} [label={_node_label(plan, node)}];")
    for param, device in plan.app.devices:
        out.append(f"  {_quote(app_id)} -> {_quote(device)} [label={_quote(param)}];")
    for node in plan.nodes:
        for role, dep in node.deps.items():
            out.append(f"  {_quote(node.name)} -> {_quote(dep)} [label={_quote(role)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_text(plan: Plan) -> str:
    """A readable table of the devices in connect order."""
    rows = [("device", "kind", "provider", "distribution", "needs")]
    for node in plan.nodes:
        needs = ", ".join(f"{r}={d}" for r, d in node.deps.items()) or "-"
        rows.append((node.name, node.kind, node.provider, node.distribution, needs))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"{plan.app.name} {plan.app.version} on target {plan.target} "
        f"(entry {plan.app.module}:{plan.app.function})",
        "",
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    keys = _key_summary(plan)
    if keys:
        lines += ["", f"keys: {keys}"]
    if plan.files:
        lines += ["", f"baked files: {len(plan.files)}"]
    return "\n".join(lines) + "\n"
