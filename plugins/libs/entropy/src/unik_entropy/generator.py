"""Fortuna's generator (Ferguson, Schneier and Kohno, *Cryptography Engineering*, 9.4).

State: a 256-bit key ``K`` and a 128-bit counter ``C``; ``C == 0`` means unseeded.

* ``reseed(s)``: ``K = SHA-256(SHA-256(K || s))``; ``C += 1``.
* ``generate(n)``: the keystream of AES-256 in counter mode under ``K`` from block
  ``C`` (the counter is a big-endian 128-bit integer, as OpenSSL's CTR mode
  counts), at most 2^16 blocks (1 MiB) per key; then two more blocks become the new
  key, so the key that produced an output is gone once it is returned (backtracking
  resistance).  Longer requests are cut into 1 MiB chunks, each followed by a re-key.

AES comes from OpenSSL's libcrypto through the C extension :mod:`unik_entropy._aesctr`
(the libcrypto CPython's ``_hashlib`` links), or from ``cryptography`` in its pure twin
:mod:`unik_entropy._aesctr_py` (``UNIK_PURE=1``, or when the extension is not built);
SHA-256 from CPython's built-in ``_sha256`` (what :mod:`hashlib` falls back to without
OpenSSL), else from :mod:`hashlib`.  This module only arranges them.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from unik import accel as _accel
from unik.errors import NotSeeded

if TYPE_CHECKING:
    from hashlib import sha256 as sha256
else:
    # Importing hashlib loads six hash modules at once (a few ms each in an emulated VM);
    # the same SHA-256 comes from the one CPython builds in.  ``_sha256`` is gone in 3.12.
    try:
        from _sha256 import sha256
    except ImportError:  # pragma: no cover - depends on the interpreter
        from hashlib import sha256

#: ``unik_entropy._aesctr`` (libcrypto) when built and not disabled, else ``_aesctr_py``.
aes: ModuleType


def _use_aes(module: ModuleType) -> None:
    global aes
    aes = module


_accel.twin("unik_entropy._aesctr", "unik_entropy._aesctr_py", _use_aes)

BLOCK = 16
KEY_SIZE = 32
#: Fortuna's limit of output per key: 2^16 blocks.
MAX_REQUEST = 1 << 20
_COUNTER_MOD = 1 << 128


def sha256d(data: bytes) -> bytes:
    """SHA-256 applied twice (Fortuna's ``SHA_d-256``)."""
    return sha256(sha256(data).digest()).digest()


class Generator:
    """The generator alone: deterministic given its seeds (known-answer testable)."""

    __slots__ = ("_counter", "_key")

    def __init__(self) -> None:
        self._key = bytes(KEY_SIZE)
        self._counter = 0

    @property
    def seeded(self) -> bool:
        """Whether :meth:`reseed` was called at least once."""
        return self._counter != 0

    @property
    def counter(self) -> int:
        """The next block number."""
        return self._counter

    def reseed(self, seed: bytes) -> None:
        """Mix ``seed`` into the key: ``K = SHA-256d(K || seed)``, ``C += 1``."""
        self._key = sha256d(self._key + seed)
        self._counter = (self._counter + 1) % _COUNTER_MOD or 1

    def keystream_and_rekey(self, n: int) -> bytes:
        """``n`` (≤ 1 MiB, a multiple of 16) bytes of keystream, then a new key: one chunk."""
        if not self.seeded:
            raise NotSeeded("the generator has not been seeded yet")
        out: bytes
        out, self._key = aes.keystream(self._key, self._counter.to_bytes(BLOCK, "big"), n)
        self._counter = (self._counter + n // BLOCK + 2) % _COUNTER_MOD or 1
        return out

    def keystream_into(self, buf: memoryview, n: int) -> None:
        """Write ``n`` (≤ 1 MiB, a multiple of 16) bytes of keystream into ``buf``, then re-key.

        ``buf`` needs 15 spare bytes beyond ``n`` (the pure twin's ``update_into`` rule).  The same
        output as :meth:`keystream_and_rekey`, into memory the caller can wipe.
        """
        if not self.seeded:
            raise NotSeeded("the generator has not been seeded yet")
        self._key = aes.keystream_into(self._key, self._counter.to_bytes(BLOCK, "big"), buf, n)
        self._counter = (self._counter + n // BLOCK + 2) % _COUNTER_MOD or 1

    def generate(self, n: int) -> bytes:
        """``n`` pseudo-random bytes; re-keys after every 1 MiB chunk and at the end.

        :raises NotSeeded: before the first :meth:`reseed`.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if not self.seeded:
            raise NotSeeded("the generator has not been seeded yet")
        if n <= MAX_REQUEST:
            whole = -(-n // BLOCK) * BLOCK
            out = self.keystream_and_rekey(whole)
            return out if whole == n else out[:n]
        parts = []
        left = n
        while left > 0:
            take = min(left, MAX_REQUEST)
            whole = -(-take // BLOCK) * BLOCK
            part = self.keystream_and_rekey(whole)
            parts.append(part if whole == take else part[:take])
            left -= take
        return b"".join(parts)
