"""C accelerator of unik-lib-entropy (its pure-Python twin is ``unik_entropy._sources_py``)."""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(ext_modules=[Extension("unik_entropy._sources", ["src/unik_entropy/_sources.c"], extra_compile_args=CFLAGS)])
