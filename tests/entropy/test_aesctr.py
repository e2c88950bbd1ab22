"""AES-256-CTR keystream: the libcrypto extension and its cryptography twin give the same bytes."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from types import ModuleType

import pytest
from unik_entropy import _aesctr_py, generator

TWINS: list[ModuleType] = [_aesctr_py]
try:
    TWINS.append(importlib.import_module("unik_entropy._aesctr"))
except ImportError:  # pragma: no cover - the extension was not built
    pass

# NIST SP 800-38A, F.5.5 (CTR-AES256.Encrypt): keystream = ciphertext XOR plaintext.
KEY = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
IV = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
PLAIN = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                      "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
CIPHER = bytes.fromhex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
                       "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6")
STREAM = bytes(a ^ b for a, b in zip(PLAIN, CIPHER, strict=True))


def test_the_c_extension_is_built() -> None:
    if len(TWINS) < 2:
        pytest.skip("unik_entropy._aesctr was not built (needs libssl-dev and a C compiler)")
    assert TWINS[1].BACKEND.startswith("OpenSSL")


@pytest.mark.parametrize("impl", TWINS, ids=lambda m: m.__name__)
def test_nist_sp800_38a_vector(impl: ModuleType) -> None:
    out, key = impl.keystream(KEY, IV, 32)
    assert out == STREAM[:32]
    assert key == STREAM[32:64]  # the next two blocks become the new key
    buf = bytearray(32 + 16)
    assert impl.keystream_into(KEY, IV, memoryview(buf), 32) == STREAM[32:64]
    assert bytes(buf[:32]) == STREAM[:32]


@pytest.mark.parametrize("n", [0, 16, 4096, 16384, 1 << 20])
def test_twins_agree_including_the_128_bit_counter_wrap(n: int) -> None:
    key = bytes(range(32))
    for iv in (bytes(16), b"\xff" * 16, (2**64 - 1).to_bytes(16, "big"), os.urandom(16)):
        results = [impl.keystream(key, iv, n) for impl in TWINS]
        assert all(r == results[0] for r in results)
        bufs = [bytearray(n + 16) for _ in TWINS]
        keys = [impl.keystream_into(key, iv, memoryview(b), n) for impl, b in zip(TWINS, bufs, strict=True)]
        assert all(k == results[0][1] for k in keys)
        assert all(bytes(b[:n]) == results[0][0] for b in bufs)


@pytest.mark.parametrize("impl", TWINS, ids=lambda m: m.__name__)
def test_bad_arguments_are_refused(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.keystream(bytes(31), IV, 16)
    with pytest.raises(ValueError):
        impl.keystream(KEY, bytes(8), 16)
    with pytest.raises(ValueError):
        impl.keystream(KEY, IV, 15)
    with pytest.raises(ValueError):
        impl.keystream(KEY, IV, (1 << 20) + 16)
    with pytest.raises(ValueError):
        impl.keystream_into(KEY, IV, bytearray(16), 32)


def test_generator_uses_the_twin_unik_pure_selects() -> None:
    expected = "unik_entropy._aesctr_py" if os.environ.get("UNIK_PURE") else TWINS[-1].__name__
    assert generator.aes.__name__ == expected
    code = "from unik_entropy import generator; print(generator.aes.__name__)"
    env = {**os.environ, "UNIK_PURE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "unik_entropy._aesctr_py"


def test_generator_output_is_the_same_under_both_twins() -> None:
    code = ("from unik_entropy.generator import Generator\n"
            "g = Generator(); g.reseed(b'kat')\n"
            "print(g.generate(100).hex(), g.generate((1 << 20) + 5)[-40:].hex(), g.counter)")
    outs = set()
    for pure in ("1", "0"):
        env = {**os.environ, "UNIK_PURE": pure}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout)
    assert len(outs) == 1
