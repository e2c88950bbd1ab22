from collections.abc import Sequence

def enter(
    keep: Sequence[int], program: bytes, names: Sequence[str], report_fd: int, tripwire: int, mountpoint: str, /
) -> None: ...
