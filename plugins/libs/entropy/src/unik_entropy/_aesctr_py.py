"""Pure-Python twin of ``unik_entropy._aesctr``: AES-256-CTR keystream over ``cryptography``.

Selected with ``UNIK_PURE=1``, and when the C extension was not built.  ``cryptography``
is then needed (``pip install unik-lib-entropy[pure]``); the C extension needs only
OpenSSL's libcrypto, which CPython itself links.
"""

from __future__ import annotations

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "unik_entropy needs its C extension _aesctr (built against OpenSSL's libcrypto) or, for the "
        "pure-Python twin (UNIK_PURE=1), the cryptography package: pip install 'unik-lib-entropy[pure]'"
    ) from exc

BACKEND = "cryptography"
KEY_SIZE = 32
BLOCK = 16
MAX_N = 1 << 20
_ZVIEW = memoryview(bytes(MAX_N + KEY_SIZE))


def _check(key: bytes, iv: bytes, n: int) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError("key must be 32 bytes")
    if len(iv) != BLOCK:
        raise ValueError("iv must be 16 bytes")
    if n < 0 or n > MAX_N or n % BLOCK:
        raise ValueError("n must be a multiple of 16 in [0, 1 MiB]")


def keystream_into(key: bytes, iv: bytes, buf: memoryview | bytearray, n: int) -> bytes:
    """Write ``n`` bytes of keystream into ``buf``; return the next 32 (the new key).

    ``buf`` needs 15 spare bytes beyond ``n`` here (``cryptography``'s ``update_into``).
    """
    _check(key, iv, n)
    if len(buf) < n:
        raise ValueError("buffer shorter than n")
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    if n:
        enc.update_into(_ZVIEW[:n], buf)
    return enc.update(_ZVIEW[:KEY_SIZE])


def keystream(key: bytes, iv: bytes, n: int) -> tuple[bytes, bytes]:
    """``n`` bytes of keystream and the next 32 (the new key)."""
    _check(key, iv, n)
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    out = enc.update(_ZVIEW[:n])
    return out, enc.update(_ZVIEW[:KEY_SIZE])
