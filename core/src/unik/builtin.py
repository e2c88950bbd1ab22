"""Providers that ship with the core: they work on every target."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .hookspecs import hookimpl
from .provider import BakedFile, Configured, Option, Provider, Request

#: The core's modules that run inside an artifact (the generated main.py imports the runtime).
UNIK_RUNTIME = ("unik.runtime", "unik.kv", "unik.posix", "unik.devices", "unik.lifecycle", "unik.accel")


class BakedKVRO(Provider):
    """A read-only key/value store whose files are baked into the artifact (``crunch``)."""

    PLUGIN_NAME = "unik.baked-kv"
    kind = "kv_ro"
    implementation = "unik.kv:BakedKVRO"
    description = "read-only key/value store baked into the artifact from a directory"
    options = (Option("source", "directory whose files become the store", "path", required=True),)

    @classmethod
    def applies(cls, request: Request) -> bool:
        """When the device table names a ``source`` directory."""
        return "source" in request.table

    @classmethod
    def configure(cls, request: Request) -> Configured:
        """Bake every regular file under ``source``, sorted, into ``assets/<device>/``."""
        source = Path(cls.table_options(request)["source"])
        if not source.is_dir():
            raise request.error("source", f"{source} is not a directory")
        dest = f"assets/{request.device}"
        files = [
            BakedFile(str(p), f"{dest}/{p.relative_to(source).as_posix()}")
            for p in sorted(source.rglob("*"))
            if p.is_file()
        ]
        return Configured(options={"directory": dest}, files=files)


@hookimpl
def unik_register_providers() -> Sequence[type[Provider]]:
    """The core's own providers."""
    return [BakedKVRO]
