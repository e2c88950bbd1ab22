from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tls_support import Certs, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Development pairs made once per session: main (localhost, 127.0.0.1), alt, wildcard, expired, rsa."""
    return make_certs(tmp_path_factory.mktemp("certs"))
