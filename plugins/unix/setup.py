"""C accelerators of unik-target-unix (each has a pure-Python twin)."""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(
    ext_modules=[
        Extension("unik_unix._tap", ["src/unik_unix/_tap.c"], extra_compile_args=CFLAGS),
        Extension("unik_unix._block", ["src/unik_unix/_block.c"], extra_compile_args=CFLAGS),
    ]
)
