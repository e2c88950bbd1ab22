"""unik.lock: pins written as TOML, read back, bad files named."""

from __future__ import annotations

from pathlib import Path

import pytest
from unik.errors import ConfigError
from unik.lockfile import LockFile


def test_pins_round_trip_with_quoted_keys(tmp_path: Path) -> None:
    lock = LockFile(tmp_path)
    assert lock.read() == {} and lock.get("kernel", "debian") is None
    lock.set("kernel", "debian", {"package": "linux-image-x", "version": "6.1-3", "sha256": "ab"})
    lock.set("kernel", "/boot/vmlinuz \"x\"", {"file": "/boot/vmlinuz \"x\"", "sha256": "cd"})
    text = (tmp_path / "unik.lock").read_text()
    assert '[kernel.debian]\npackage = "linux-image-x"' in text
    assert '[kernel."/boot/vmlinuz \\"x\\""]' in text
    assert LockFile(tmp_path).get("kernel", "/boot/vmlinuz \"x\"") == {"file": "/boot/vmlinuz \"x\"", "sha256": "cd"}
    assert LockFile(tmp_path).get("kernel", "debian") == {"package": "linux-image-x", "version": "6.1-3",
                                                          "sha256": "ab"}


@pytest.mark.parametrize(("text", "why"), [("[kernel", "not valid TOML"), ("kernel = 1\n", "expected sub-tables")])
def test_a_broken_lock_file_is_named_with_the_fix(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "unik.lock").write_text(text)
    with pytest.raises(ConfigError, match=why) as info:
        LockFile(tmp_path).read()
    assert str(tmp_path / "unik.lock") in str(info.value)
