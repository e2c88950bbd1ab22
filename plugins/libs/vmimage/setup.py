"""Build unik-lib-vmimage: the static init (``unik_vmimage/init/unik-init``) goes into the wheel."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

SOURCE = Path("src/unik_vmimage/init/init.c")
CFLAGS = ["-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s"]
EXT_CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]


class BuildPyWithInit(build_py):
    """Compile the init next to the package's Python files."""

    def run(self) -> None:
        """Copy the Python files, then compile the init beside them (not for editable installs)."""
        super().run()
        if self.editable_mode:  # an editable install compiles it on first use, into the cache
            return
        out = Path(self.build_lib) / "unik_vmimage" / "init"
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cc", *CFLAGS, "-o", str(out / "unik-init"), str(SOURCE)], check=True)
        digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
        (out / "unik-init.source").write_text(digest + "\n")


setup(
    cmdclass={"build_py": BuildPyWithInit},
    ext_modules=[
        Extension("unik_vmimage._rdrand", ["src/unik_vmimage/_rdrand.c"], extra_compile_args=EXT_CFLAGS),
    ],
)
