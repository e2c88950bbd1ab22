"""cryptography is unik-lib-tls's host-side extra (``[certs]``): no image carries it, selfsigned asks for it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from unik.bundle import distribution_closure


def test_images_do_not_carry_cryptography() -> None:
    # what an image of a plan with a tls device carries: unik-lib-tls and what it requires at run time
    closure = distribution_closure(["unik-lib-tls"])
    assert "unik-lib-tls" in closure and "unik-core" in closure
    assert not {"cryptography", "cffi", "pycparser"} & set(closure), closure


def test_selfsigned_without_cryptography_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from unik_tls.cli import cmd_selfsigned

    monkeypatch.setitem(sys.modules, "cryptography", None)  # import cryptography raises ImportError
    monkeypatch.delitem(sys.modules, "unik_tls.certs", raising=False)
    ns = argparse.Namespace(names=None, out_dir=tmp_path, cert=None, key=None, days=30, key_type="ec", force=False)
    assert cmd_selfsigned(ns) == 1
    err = capsys.readouterr().err
    assert "unik tls selfsigned makes certificates with cryptography, which is not installed" in err, err
    assert err.rstrip().endswith("pip install 'unik-lib-tls[certs]'"), err
    assert not list(tmp_path.iterdir())
