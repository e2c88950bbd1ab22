"""C accelerators of unik-lib-tcpip (each has a pure-Python twin)."""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
# The frame builder _fastpath exports and tcp/_predict imports (its type and capsule): listed as
# both extensions' dependency, so a change rebuilds both and the sdist carries it.
FRAME_H = ["src/unik_tcpip/_tcpframe.h"]

setup(
    ext_modules=[
        Extension("unik_tcpip._checksum", ["src/unik_tcpip/_checksum.c"], extra_compile_args=CFLAGS),
        Extension("unik_tcpip._fastpath", ["src/unik_tcpip/_fastpath.c"], depends=FRAME_H, extra_compile_args=CFLAGS),
        Extension(
            "unik_tcpip.tcp._predict", ["src/unik_tcpip/tcp/_predict.c"], depends=FRAME_H, extra_compile_args=CFLAGS
        ),
    ]
)
