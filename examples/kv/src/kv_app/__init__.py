"""A key/value store on a FAT disk: counts its boots, sets a key, lists the store.

The data lives in ordinary files on a FAT filesystem, so the disk image can be read
and changed with `unik fat`, mtools, or by mounting it.  With ``--hold`` it keeps
running until it is stopped (`unik stop`, Ctrl-C): the stop cancels it and the store
is disconnected, which flushes the filesystem, before the process or VM ends.
"""

import asyncio

from unik.devices import KVRW, Console, EntryKind


async def start(kv: KVRW, console: Console, *, key: str = "", value: str = "", delete: str = "",
                hold: bool = False) -> None:
    """Count this boot, apply ``--key K --value V`` / ``--delete K``, print the store; ``--hold``: stay up."""
    boots = int(await kv.get("meta/boots")) + 1 if await kv.exists("meta/boots") else 1
    await kv.set("meta/boots", str(boots).encode())
    if key:
        await kv.set(key, value.encode())
    if delete and await kv.exists(delete):
        await kv.remove(delete)
    console.log(f"boot #{boots}")
    todo = [""]
    while todo:
        prefix = todo.pop()
        for name, kind in await kv.list(prefix):
            path = f"{prefix}/{name}" if prefix else name
            if kind is EntryKind.DICTIONARY:
                todo.append(path)
            else:
                console.log(f"{path} = {(await kv.get(path)).decode(errors='replace')}")
    if hold:
        console.log("holding the store open until stopped")
        await asyncio.Event().wait()
