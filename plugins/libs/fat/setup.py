"""C accelerators of unik-lib-fat (each has a pure-Python twin in ``unik_fat._accel_py``)."""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(ext_modules=[Extension("unik_fat._accel", ["src/unik_fat/_accel.c"], extra_compile_args=CFLAGS)])
