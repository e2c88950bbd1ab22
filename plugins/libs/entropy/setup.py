"""C accelerators of unik-lib-entropy (pure-Python twins: ``_sources_py``, ``_aesctr_py``).

``_aesctr`` links OpenSSL's libcrypto (libssl-dev to build; libcrypto.so.3, which CPython's
``_hashlib`` and ``_ssl`` load too, at run time).
"""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(ext_modules=[
    Extension("unik_entropy._sources", ["src/unik_entropy/_sources.c"], extra_compile_args=CFLAGS),
    Extension("unik_entropy._aesctr", ["src/unik_entropy/_aesctr.c"], extra_compile_args=CFLAGS,
              libraries=["crypto"]),
])
