"""Start-up cost: precomputed constants match their computation; what importing the device loads."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from unik_entropy import generator, helpers
from unik_entropy.health import APT_CUTOFFS, WINDOW, HealthTest, apt_cutoff, compute_apt_cutoff
from unik_entropy.pools import Pool, Pools


@pytest.mark.parametrize("h", sorted(APT_CUTOFFS))
def test_apt_cutoff_table_matches_the_computation(h: float) -> None:
    assert APT_CUTOFFS[h] == compute_apt_cutoff(h, WINDOW)
    assert apt_cutoff(h) == compute_apt_cutoff(h)
    assert HealthTest("t", h).apt == APT_CUTOFFS[h]


def test_apt_cutoff_outside_the_table_is_computed() -> None:
    assert 1.5 not in APT_CUTOFFS
    assert apt_cutoff(1.5) == compute_apt_cutoff(1.5)
    assert 311 > apt_cutoff(1.5) > 177
    # Another window is never taken from the table (which is for 512 samples).
    assert apt_cutoff(2.0, 1024) == compute_apt_cutoff(2.0, 1024) != APT_CUTOFFS[2.0]


def test_sha256_is_sha256() -> None:
    for data in (b"", b"abc", bytes(range(256)) * 10):
        assert generator.sha256(data).digest() == hashlib.sha256(data).digest()
    h = generator.sha256()
    h.update(b"a")
    h.update(b"bc")
    assert h.digest() == hashlib.sha256(b"abc").digest()
    assert generator.sha256d(b"x") == hashlib.sha256(hashlib.sha256(b"x").digest()).digest()


def test_pool_starts_empty() -> None:
    pool = Pool()
    assert pool.length == 0 and pool.hash.digest() == hashlib.sha256().digest()
    assert repr(pool).startswith("Pool(hash=") and "length=0" in repr(pool)
    assert Pools().pools[0] is not Pools().pools[0]


def test_unik_random_is_served_lazily() -> None:
    from unik_entropy.helpers import UnikRandom

    r = UnikRandom()
    assert 0.0 <= r.random() < 1.0 and len(r.randbytes(5)) == 5
    assert helpers.UnikRandom is UnikRandom
    with pytest.raises(AttributeError):
        helpers.no_such_thing  # noqa: B018


# What the device's import adds to what its dependencies (asyncio, unik's core) load anyway.
_NEW_MODULES = """
import sys, json
import asyncio, typing, unik.devices, unik.errors
before = set(sys.modules)
import unik_entropy.device
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_device_import_loads_no_random_base64_hashlib_or_dataclasses() -> None:
    out = subprocess.run([sys.executable, "-c", _NEW_MODULES], capture_output=True, text=True, check=True).stdout
    new = set(json.loads(out))
    assert "unik_entropy.device" in new
    assert not new & {"random", "base64", "hashlib", "dataclasses", "unik_entropy._unikrandom"}, new


_SEAL = """
import sys, json
import unik_entropy.device
from unik import lifecycle
before = sorted(m for m in ("base64", "random", "unik_entropy._unikrandom") if m in sys.modules)
lifecycle.announce(lifecycle.BEFORE_SEAL)
after = sorted(m for m in ("base64", "random", "unik_entropy._unikrandom") if m in sys.modules)
print(json.dumps([before, after]))
"""


def test_seal_imports_what_helpers_load_on_first_use() -> None:
    # A sealed process (spt's sandbox) cannot import: what loads lazily must be in by then.
    out = subprocess.run([sys.executable, "-c", _SEAL], capture_output=True, text=True, check=True).stdout
    before, after = json.loads(out)
    assert "unik_entropy._unikrandom" not in before
    assert after == ["base64", "random", "unik_entropy._unikrandom"]
