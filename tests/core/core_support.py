"""Types shared by the core tests."""

from collections.abc import Callable
from pathlib import Path

#: ``make_app(source, toml="", name="demo")`` writes an application and returns its root.
MakeApp = Callable[..., Path]
