"""C data paths of unik-lib-fdio (each has a pure-Python twin)."""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(
    ext_modules=[
        Extension("unik_fdio._tap", ["src/unik_fdio/_tap.c"], extra_compile_args=CFLAGS),
        Extension("unik_fdio._block", ["src/unik_fdio/_block.c"], extra_compile_args=CFLAGS),
        Extension("unik_fdio._packet", ["src/unik_fdio/_packet.c"], extra_compile_args=CFLAGS),
    ]
)
