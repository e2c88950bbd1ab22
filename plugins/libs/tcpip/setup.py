"""C accelerators of unik-lib-tcpip (each has a pure-Python twin)."""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(
    ext_modules=[
        Extension("unik_tcpip._checksum", ["src/unik_tcpip/_checksum.c"], extra_compile_args=CFLAGS),
        Extension("unik_tcpip._fastpath", ["src/unik_tcpip/_fastpath.c"], extra_compile_args=CFLAGS),
        Extension("unik_tcpip.tcp._predict", ["src/unik_tcpip/tcp/_predict.c"], extra_compile_args=CFLAGS),
    ]
)
