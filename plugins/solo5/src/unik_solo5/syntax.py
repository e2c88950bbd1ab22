"""solo5's command-line dialect: ``--net:service=tap0`` for unik's ``--net service=tap0``.

The tenders of solo5 name a device after a colon; spt and hvt accept the same on
``unik``'s command line (contributed by the ``unik_argv_syntax`` hook) and inside an spt
artifact (:mod:`unik_solo5.boot` hands it to :func:`unik.runtime.parse_args`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from unik.keys import Key


def solo5_syntax(argv: Sequence[str], keys: Mapping[str, Key]) -> list[str]:
    """Rewrite solo5's ``--net:service=tap0`` into ``--net service=tap0`` (up to ``--``).

    Only per-device keys are rewritten; anything else is left for the parser to judge.
    """
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            out += [arg, *args]
            break
        option, colon, binding = arg.partition(":")
        name = option[2:].replace("-", "_")
        if arg.startswith("--") and colon and name in keys and keys[name].per_device and "=" in binding:
            out += [option, binding]
        else:
            out.append(arg)
    return out
