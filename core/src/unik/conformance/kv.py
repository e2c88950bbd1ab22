"""Conformance of ``KVRO`` and ``KVRW``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

from ..devices import KVRO, KVRW, EntryKind
from ..errors import DeviceClosed, KeyNotFound, NotAValue
from .base import DeviceConformance, raises

#: What the store under test must hold when connected (key -> value).
FILES: Mapping[str, bytes] = {
    "index.html": b"<h1>hello</h1>\n",
    "empty": b"",
    "dir/data.bin": bytes(range(256)) * 40,
    "dir/sub/deep.txt": b"deep\n",
}


class KVROConformance(DeviceConformance):
    """Values, dictionaries, partial reads, sizes and digests; a missing key or a dictionary is a typed error.

    :meth:`connect` returns a store holding exactly :attr:`files` (bake them, or write
    them into the image the store reads).
    """

    protocol: ClassVar[type[Any]] = KVRO
    files: ClassVar[Mapping[str, bytes]] = FILES

    def test_values_and_dictionaries(self) -> None:
        """Values and dictionaries."""

        async def body(kv: Any) -> None:
            for key, value in self.files.items():
                assert await kv.exists(key) is EntryKind.VALUE
                assert await kv.get(key) == value
                assert await kv.size(key) == len(value)
                assert await kv.digest(key) == hashlib.sha256(value).digest()
                assert isinstance(await kv.last_modified(key), int)
            assert await kv.exists("dir") is EntryKind.DICTIONARY
            assert await kv.exists("dir/sub") is EntryKind.DICTIONARY
            assert await kv.exists("missing") is None
            assert await kv.exists("dir/missing") is None

        self.check(body)

    def test_partial_reads(self) -> None:
        """Partial reads."""

        async def body(kv: Any) -> None:
            value = self.files["dir/data.bin"]
            assert await kv.get_partial("dir/data.bin", 0, 10) == value[:10]
            assert await kv.get_partial("dir/data.bin", 5000, 1000) == value[5000:6000]
            assert await kv.get_partial("dir/data.bin", len(value) - 4, 100) == value[-4:]  # fewer at the end
            assert await kv.get_partial("dir/data.bin", len(value), 10) == b""

        self.check(body)

    def test_listing_is_sorted_and_typed(self) -> None:
        """Listing is sorted and typed."""

        async def body(kv: Any) -> None:
            top = sorted({k.split("/")[0] for k in self.files})
            listed = await kv.list("")
            assert [name for name, _ in listed] == top
            kinds = dict(listed)
            assert kinds["dir"] is EntryKind.DICTIONARY and kinds["index.html"] is EntryKind.VALUE
            assert await kv.list("dir") == [("data.bin", EntryKind.VALUE), ("sub", EntryKind.DICTIONARY)]

        self.check(body)

    def test_missing_keys_and_dictionaries_are_typed_errors(self) -> None:
        """Missing keys and dictionaries are typed errors."""

        async def body(kv: Any) -> None:
            await raises(KeyNotFound, lambda: kv.get("missing"), "get of a missing key")
            await raises(KeyNotFound, lambda: kv.get("dir/missing"), "get of a missing key in a dictionary")
            await raises(NotAValue, lambda: kv.get("dir"), "get of a dictionary")
            await raises(KeyNotFound, lambda: kv.size("missing"), "size of a missing key")
            await raises(KeyNotFound, lambda: kv.list("missing"), "list of a missing dictionary")

        self.check(body)

    def test_disconnected_store_raises_device_closed(self) -> None:
        """Disconnected store raises device closed."""

        async def body(kv: Any) -> None:
            await kv.disconnect()
            await raises(DeviceClosed, lambda: kv.get("index.html"), "get from a disconnected store")

        self.check(body)


class KVRWConformance(KVROConformance):
    """A :class:`KVROConformance` store that can also be written: set, partial set, remove, rename."""

    protocol = KVRW

    def test_set_creates_parents_and_replaces(self) -> None:
        """Set creates parents and replaces."""

        async def body(kv: Any) -> None:
            await kv.set("new/nested/key.txt", b"first")
            assert await kv.exists("new/nested") is EntryKind.DICTIONARY
            assert await kv.get("new/nested/key.txt") == b"first"
            await kv.set("new/nested/key.txt", b"second, longer")
            assert await kv.get("new/nested/key.txt") == b"second, longer"
            await kv.set("index.html", b"")
            assert await kv.get("index.html") == b"" and await kv.size("index.html") == 0

        self.check(body)

    def test_partial_set_overwrites_and_grows(self) -> None:
        """Partial set overwrites and grows."""

        async def body(kv: Any) -> None:
            await kv.set("p", b"0123456789")
            await kv.set_partial("p", 2, b"ab")
            assert await kv.get("p") == b"01ab456789"
            await kv.set_partial("p", 8, b"XYZW")
            assert await kv.get("p") == b"01ab4567XYZW"

        self.check(body)

    def test_remove_and_rename(self) -> None:
        """Remove and rename."""

        async def body(kv: Any) -> None:
            await kv.set("r/a", b"a")
            await kv.set("r/b/c", b"c")
            await kv.rename("r/a", "r/moved")
            assert await kv.exists("r/a") is None and await kv.get("r/moved") == b"a"
            await kv.rename("r/b", "q")
            assert await kv.get("q/c") == b"c" and await kv.exists("r/b") is None
            await kv.remove("r/moved")
            await raises(KeyNotFound, lambda: kv.get("r/moved"), "get of a removed key")
            await kv.remove("q")
            assert await kv.exists("q") is None

        self.check(body)
