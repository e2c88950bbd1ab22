"""Versions: the distribution's and the plugin API's."""

__version__ = "0.1.0"

#: The plugin API this core provides; plugins declare a range with ``UNIK_API``.
API_VERSION = "1.0"
