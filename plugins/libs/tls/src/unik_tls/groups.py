"""Key-exchange groups: Mozilla's "intermediate" profile, set on OpenSSL contexts.

Python's :mod:`ssl` sets one ECDH curve at most (``set_ecdh_curve``); OpenSSL's
``SSL_CTX_set1_groups_list`` sets the list.  This module calls it through :mod:`ctypes`
on the ``SSL_CTX`` of an :class:`ssl.SSLContext`, after checking that the pointer read
really is that context (its options must read back the same through OpenSSL); hvt's
static CPython, which has no ctypes, has a built-in ``_unik_ssl_groups.set_groups`` that
makes the same call.  Where neither can (another Python build), it falls back to
``set_ecdh_curve("prime256v1")``: P-256 alone, still inside the profile.
"""

from __future__ import annotations

import importlib
import ssl
import sys
from types import ModuleType

# Both looked up here, at import: a lookup at the first context (a TLS client's may come
# after spt's seal) would search sys.path with system calls the sealed process may not make.
ctypes: ModuleType | None
try:
    import ctypes
except ImportError:  # a unikernel whose CPython is linked statically (hvt)
    ctypes = None
try:  # hvt's static CPython, which has no ctypes, builds this in beside its _ssl
    _built_in: ModuleType | None = importlib.import_module("_unik_ssl_groups")
except ImportError:
    _built_in = None

__all__ = ["GROUPS", "set_groups"]

#: Mozilla's intermediate configuration (version 5.7): X25519, P-256, P-384, in this order.
GROUPS = "X25519:prime256v1:secp384r1"

_SSL_CTRL_SET_GROUPS_LIST = 92  # SSL_CTX_set1_groups_list is this SSL_CTX_ctrl call (ssl.h)


def _ssl_ctx_pointer(ctx: ssl.SSLContext) -> int | None:
    """The ``SSL_CTX *`` inside ``ctx``, or ``None`` when it cannot be found for sure."""
    import _ssl

    if ctypes is None:
        return None
    try:
        lib = ctypes.CDLL(_ssl.__file__)  # its dependencies resolve libssl's symbols
        get_options = lib.SSL_CTX_get_options
    except (OSError, AttributeError):  # a built-in _ssl has no __file__
        return None
    get_options.argtypes, get_options.restype = [ctypes.c_void_p], ctypes.c_uint64
    # CPython's PySSLContext: the object header, then ``SSL_CTX *ctx``.
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer:
        return None
    before = int(ctx.options)
    toggled = before ^ ssl.OP_NO_TICKET
    ctx.options = ssl.Options(toggled)  # a changed value to read back through OpenSSL...
    seen = get_options(pointer)
    ctx.options = ssl.Options(before)  # ...then the caller's options again
    return pointer if seen == toggled else None


def set_groups(ctx: ssl.SSLContext, groups: str = GROUPS) -> bool:
    """Offer and accept only ``groups`` on ``ctx``; ``False`` when only P-256 could be set."""
    if _built_in is not None and _built_in.set_groups(ctx, groups):
        return True
    pointer = _ssl_ctx_pointer(ctx) if sys.implementation.name == "cpython" else None
    if pointer is not None and ctypes is not None:
        import _ssl

        ctrl = ctypes.CDLL(_ssl.__file__).SSL_CTX_ctrl
        ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
        ctrl.restype = ctypes.c_long
        if ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode("ascii")) == 1:
            return True
    ctx.set_ecdh_curve("prime256v1")
    return False
