"""Fortuna (unik-lib-entropy) against os.urandom and secrets.token_bytes: MB/s for 32 B, 4 KiB, 1 MiB requests."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchlib import median_seconds, table, write
from unik_entropy.fortuna import Fortuna

SIZES = {"32b": (32, 20000), "4k": (4096, 2000), "1m": (1 << 20, 20)}


def mbps(fn: Callable[[int], bytes], size: int, calls: int) -> float:
    def batch() -> None:
        for _ in range(calls):
            fn(size)
    return size * calls / median_seconds(batch, runs=7) / 1e6


def main() -> None:
    rng = Fortuna()
    rng.bootstrap()
    unik = {f"mbps_{k}": mbps(rng.generate, s, c) for k, (s, c) in SIZES.items()}
    peers = {
        "os_urandom": {f"mbps_{k}": mbps(os.urandom, s, c) for k, (s, c) in SIZES.items()},
        "secrets_token_bytes": {f"mbps_{k}": mbps(secrets.token_bytes, s, c) for k, (s, c) in SIZES.items()},
    }
    ratios = {f"{k}_over_os_urandom": unik[k] / peers["os_urandom"][k] for k in unik}
    path = write("entropy", unik, peers, ratios)
    table([(f"unik.{k}", f"{v:.1f}") for k, v in unik.items()]
          + [(f"os_urandom.{k}", f"{v:.1f}") for k, v in peers["os_urandom"].items()]
          + [(k, f"{v:.2f}") for k, v in ratios.items()])
    print(path)


if __name__ == "__main__":
    main()
