"""Any sequence of operations gives the same tree and bytes as an in-memory model."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fat_support import HAVE_DOSFSTOOLS, assert_fsck_clean, fat_settings, formatted
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from unik_fat.errors import FatError, NoSpace
from unik_fat.fs import FatFileSystem
from unik_fat.image import run
from unik_fat.names import fold

NAMES = st.sampled_from(
    ["a", "B", "file.txt", "Long Name Here.data", "x" * 40, "ünï.c", "k.tar.gz", "UP.TXT", "up.txt"]
)
DATA = st.binary(max_size=3000) | st.sampled_from([b"", b"z" * 5000, bytes(range(256)) * 9])


class FatModel(RuleBasedStateMachine):
    """The model: ``dirs`` (folded path -> display path) and ``files`` (folded path -> bytes)."""

    def __init__(self) -> None:
        super().__init__()
        fat_type = self.fat_type
        opts = {"fat_type": 32, "sectors_per_cluster": 1} if fat_type == 32 else {"fat_type": fat_type}
        size = {12: 1 << 20, 16: 20 << 20, 32: 34 << 20}[fat_type]
        self.block = formatted(size, **opts)
        self.fs = run(FatFileSystem.mount(self.block, cache_sectors=32))
        self.dirs: dict[str, str] = {"": ""}
        self.files: dict[str, bytes] = {}
        self.names: dict[str, str] = {}  # folded path -> name as created

    fat_type = 16

    def _parent_choices(self) -> list[str]:
        return sorted(self.dirs)

    def _join(self, parent: str, name: str) -> str:
        return f"{self.dirs[parent]}/{name}"

    @rule(data=st.data(), name=NAMES, content=DATA)
    def write_file(self, data: st.DataObject, name: str, content: bytes) -> None:
        parent = data.draw(st.sampled_from(self._parent_choices()))
        key = f"{parent}/{fold(name)}"
        path = self._join(parent, name)
        if key in self.dirs:
            with pytest.raises(FatError):
                run(self.fs.open(path, "wb"))
            return
        f = run(self.fs.open(path, "wb"))
        run(f.write(content))
        run(f.close())
        self.files[key] = content
        self.names.setdefault(key, name)

    @rule(data=st.data(), extra=DATA)
    def append(self, data: st.DataObject, extra: bytes) -> None:
        if not self.files:
            return
        key = data.draw(st.sampled_from(sorted(self.files)))
        f = run(self.fs.open(key, "ab"))
        run(f.write(extra))
        run(f.close())
        self.files[key] += extra

    @rule(data=st.data(), at=st.integers(0, 6000), extra=st.binary(max_size=700))
    def overwrite(self, data: st.DataObject, at: int, extra: bytes) -> None:
        if not self.files:
            return
        key = data.draw(st.sampled_from(sorted(self.files)))
        f = run(self.fs.open(key, "r+b"))
        run(f.seek(at))
        run(f.write(extra))
        run(f.close())
        old = self.files[key]
        if extra:
            old = old + bytes(max(0, at - len(old)))
            old = old[:at] + extra + old[at + len(extra):]
        self.files[key] = old

    @rule(data=st.data(), size=st.integers(0, 6000))
    def truncate(self, data: st.DataObject, size: int) -> None:
        if not self.files:
            return
        key = data.draw(st.sampled_from(sorted(self.files)))
        f = run(self.fs.open(key, "r+b"))
        run(f.truncate(size))
        run(f.close())
        old = self.files[key]
        self.files[key] = old[:size] + bytes(max(0, size - len(old)))

    @rule(data=st.data(), name=NAMES, content=DATA)
    def replace(self, data: st.DataObject, name: str, content: bytes) -> None:
        """A whole file written at once (new or existing): ``FatFileSystem.replace``."""
        parent = data.draw(st.sampled_from(self._parent_choices()))
        key = f"{parent}/{fold(name)}"
        if key in self.dirs:
            return
        step = data.draw(st.integers(1, 4000))
        chunks = [content[i:i + step] for i in range(0, len(content), step)]
        run(self.fs.replace(self._join(parent, name), chunks, data.draw(st.sampled_from([None, len(content)]))))
        self.files[key] = content
        self.names.setdefault(key, name)

    @rule(data=st.data(), how=st.sampled_from(["no space, size known", "no space, found while writing",
                                               "source fails", "over 4 GiB"]))
    def overwrite_that_fails(self, data: st.DataObject, how: str) -> None:
        """A replace that fails: the old file (or its absence) stays as it was, nothing leaks."""
        keys = sorted(self.files)
        pick: bool = bool(keys) and data.draw(st.booleans())  # drawn first, as before
        name: str | None = data.draw(st.sampled_from(keys)) if pick else None
        path = name if name is not None else self._join(data.draw(st.sampled_from(self._parent_choices())),
                                                        "never created.bin")
        if name is None and fold(path) in {fold(self.dirs[k]) for k in self.dirs}:
            return
        free = self.fs.statvfs()["free_clusters"] - len(self.fs.vol.pending_free)
        cs = self.fs.vol.cluster_size
        too_big = (free + 1) * cs

        def fills() -> Iterator[bytes]:
            yield b"f" * 1000
            if how == "source fails":
                raise OSError(5, "the source failed")
            for _ in range(too_big // 4096 + 1):
                yield b"f" * 4096

        if how == "no space, found while writing" and too_big > 4 << 20:
            how = "no space, size known"  # a FAT32 model has too much room to fill it at every step
        size = {"no space, size known": too_big, "over 4 GiB": 1 << 32}.get(how)
        with pytest.raises(OSError, match="the source failed") if how == "source fails" else \
                pytest.raises(NoSpace):
            run(self.fs.replace(path, fills(), size))
        assert free == self.fs.statvfs()["free_clusters"] - len(self.fs.vol.pending_free)  # nothing leaked

    @rule(data=st.data(), name=NAMES)
    def mkdir(self, data: st.DataObject, name: str) -> None:
        parent = data.draw(st.sampled_from(self._parent_choices()))
        key = f"{parent}/{fold(name)}"
        if key in self.dirs or key in self.files or parent.count("/") > 3:
            return
        run(self.fs.mkdir(self._join(parent, name)))
        self.dirs[key] = self._join(parent, name)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        if not self.files:
            return
        key = data.draw(st.sampled_from(sorted(self.files)))
        run(self.fs.remove(key))
        del self.files[key]

    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        empty = [d for d in self.dirs if d and not any(k.startswith(d + "/") for k in [*self.files, *self.dirs])]
        if not empty:
            return
        key = data.draw(st.sampled_from(sorted(empty)))
        run(self.fs.rmdir(key))
        del self.dirs[key]

    @rule(data=st.data(), name=NAMES)
    def rename_file(self, data: st.DataObject, name: str) -> None:
        if not self.files:
            return
        src = data.draw(st.sampled_from(sorted(self.files)))
        parent = data.draw(st.sampled_from(self._parent_choices()))
        key = f"{parent}/{fold(name)}"
        if key in self.dirs:
            return
        run(self.fs.rename(src, self._join(parent, name)))
        content = self.files.pop(src)
        self.files[key] = content

    @rule(data=st.data(), name=NAMES)
    def rename_dir(self, data: st.DataObject, name: str) -> None:
        movable = [d for d in self.dirs if d]
        if not movable:
            return
        src = data.draw(st.sampled_from(sorted(movable)))
        parents = [p for p in self.dirs if p != src and not p.startswith(src + "/")]
        parent = data.draw(st.sampled_from(sorted(parents)))
        key = f"{parent}/{fold(name)}"
        if key in self.dirs or key in self.files or key.count("/") > 4:
            return
        run(self.fs.rename(self.dirs[src], self._join(parent, name)))

        def moved(k: str) -> str:
            return key + k[len(src):] if k == src or k.startswith(src + "/") else k

        new_display = self._join(parent, name)
        self.dirs = {moved(k): (new_display + v[len(self.dirs[src]):] if moved(k) != k else v)
                     for k, v in self.dirs.items()}
        self.files = {moved(k): v for k, v in self.files.items()}

    @rule()
    def remount(self) -> None:
        run(self.fs.disconnect())
        self.fs = run(FatFileSystem.mount(self.block, cache_sectors=32))

    @invariant()
    def same_tree(self) -> None:
        for d in self.dirs:
            listed = {fold(n) for n in run(self.fs.listdir(d or "/"))}
            expect = {k[len(d) + 1:] for k in [*self.files, *self.dirs] if k and k.rsplit("/", 1)[0] == d}
            assert listed == expect, d

    @precondition(lambda self: bool(self.files))
    @invariant()
    def same_bytes(self) -> None:
        for key, content in self.files.items():
            f = run(self.fs.open(key, "rb"))
            assert run(f.read()) == content, key
            run(f.close())

    def teardown(self) -> None:
        run(self.fs.disconnect())
        fs = run(FatFileSystem.mount(self.block))
        assert run(fs.check()) == []
        if HAVE_DOSFSTOOLS:
            with tempfile.TemporaryDirectory() as tmp:
                img = Path(tmp) / "s.img"
                img.write_bytes(bytes(self.block.data))
                assert_fsck_clean(img)


def _machine(fat: int) -> type[FatModel]:
    return type(f"FatModel{fat}", (FatModel,), {"fat_type": fat})


@pytest.mark.parametrize("fat", [12, 16, 32])
def test_stateful(fat: int, accel: str) -> None:
    del accel
    machine = _machine(fat)
    machine.TestCase.settings = fat_settings().__class__(parent=fat_settings(), stateful_step_count=25)
    machine.TestCase().runTest()

