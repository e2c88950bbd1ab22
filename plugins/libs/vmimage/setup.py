"""Build unik-lib-vmimage: the static init (``unik_vmimage/init/unik-init``) goes into the wheel.

The init is an x86_64 executable, so the wheel is a platform wheel although it has no
extension module (the guest's C part, RDRAND, is unik-lib-vmguest's).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

SOURCE = Path("src/unik_vmimage/init/init.c")
CFLAGS = ["-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s"]


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


class PlatformDistribution(Distribution):
    """A distribution whose wheel is tagged for a platform: it carries a compiled executable."""

    def has_ext_modules(self) -> bool:
        """Always: the wheel holds the compiled init."""
        return True


setup(cmdclass={"build_py": BuildPyWithInit}, distclass=PlatformDistribution)
