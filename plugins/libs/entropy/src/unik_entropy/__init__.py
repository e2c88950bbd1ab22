"""unik-lib-entropy: a Fortuna CSPRNG and its entropy sources, the ``Random`` device of every target."""

from __future__ import annotations

__version__ = "0.1.0"
