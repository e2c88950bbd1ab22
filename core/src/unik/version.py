"""The core distribution's name and version, and the plugin API's version."""

#: The core's distribution name (the import package and the command are ``unik``; the
#: name ``unik`` on PyPI belongs to an unrelated project).
DISTRIBUTION = "unik-core"

__version__ = "0.1.0"

#: The plugin API this core provides; plugins declare a range with ``UNIK_API``.
API_VERSION = "1.0"
