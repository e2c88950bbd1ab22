"""unik-lib-vmguest's C part: the CPU's RDRAND instruction (pure twin: ``_rdrand_pure.py``)."""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(ext_modules=[Extension("unik_vmguest._rdrand", ["src/unik_vmguest/_rdrand.c"], extra_compile_args=CFLAGS)])
