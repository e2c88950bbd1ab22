"""unik-target-solo5's C parts: the in-process sandbox (an extension) and the tender (an executable)."""

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
TENDER = "unik-spt"


class BuildWithTender(build_ext):
    """build_ext that also compiles ``tender.c`` into the executable ``unik_solo5/unik-spt``."""

    def run(self) -> None:
        """Build the extension, then the tender beside it."""
        super().run()
        out_dir = Path(self.get_ext_fullpath("unik_solo5._sandbox")).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        objects = self.compiler.compile(
            ["src/unik_solo5/tender.c"], output_dir=self.build_temp, extra_postargs=CFLAGS
        )
        self.compiler.link_executable(objects, TENDER, output_dir=str(out_dir))


setup(
    ext_modules=[Extension("unik_solo5._sandbox", ["src/unik_solo5/_sandbox.c"], extra_compile_args=CFLAGS)],
    cmdclass={"build_ext": BuildWithTender},
)
