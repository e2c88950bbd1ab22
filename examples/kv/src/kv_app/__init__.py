"""A key/value store on a FAT disk: counts its boots, sets a key, lists the store.

The data lives in ordinary files on a FAT filesystem, so the disk image can be read
and changed with `unik fat`, mtools, or by mounting it.  Values are listed by their
first bytes only (``get_partial``): a large value costs no memory.  With ``--hold`` it
keeps running until it is stopped (`unik stop`, Ctrl-C): the stop cancels it and the
store is disconnected, which flushes the filesystem, before the process or VM ends.
"""

import asyncio

from unik.devices import KVRW, Console, EntryKind
from unik.errors import DeviceError

SHOWN = 60  # bytes of each value printed


async def _boots(kv: KVRW) -> int:
    """The boot counter, starting again (and saying so) if it is not a number."""
    if not await kv.exists("meta/boots"):
        return 0
    text = await kv.get_partial("meta/boots", 0, 20)
    if not text.strip().isdigit():
        raise ValueError(f"meta/boots holds {text[:20]!r}, not a number")
    return int(text)


async def start(kv: KVRW, console: Console, *, key: str = "", value: str = "", delete: str = "",
                hold: bool = False) -> int:
    """Count this boot, apply ``--key K --value V`` / ``--delete K``, print the store; ``--hold``: stay up.

    Returns 2 on bad arguments, 1 when the store refuses a change.
    """
    if value and not key:
        console.log("--value needs --key: unik run --key NAME --value TEXT")
        return 2
    try:
        boots = await _boots(kv) + 1
    except ValueError as exc:
        console.log(f"{exc}: counting from 1 again")
        boots = 1
    try:
        await kv.set("meta/boots", str(boots).encode())
        if key:
            await kv.set(key, value.encode())
        if delete:
            if await kv.exists(delete):
                await kv.remove(delete)
            else:
                console.log(f"{delete}: no such key, nothing deleted")
    except DeviceError as exc:  # a bad name (FAT forbids "*:<>?\|), a full disk...
        console.log(f"the store refused: {exc}")
        return 1
    console.log(f"boot #{boots}")
    todo = [""]
    while todo:
        prefix = todo.pop()
        for name, kind in await kv.list(prefix):
            path = f"{prefix}/{name}" if prefix else name
            if kind is EntryKind.DICTIONARY:
                todo.append(path)
                continue
            size = await kv.size(path)
            shown = (await kv.get_partial(path, 0, SHOWN)).decode(errors="replace")
            more = f"... ({size} bytes)" if size > SHOWN else ""
            console.log(f"{path} = {shown}{more}")
    if hold:
        console.log("holding the store open until stopped")
        await asyncio.Event().wait()
    return 0
