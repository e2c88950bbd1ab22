"""Hello world, as mirage-skeleton's: four lines, one second apart."""

from unik.devices import Console, Sleep


async def start(console: Console, sleep: Sleep, *, greeting: str = "hello", count: int = 4) -> None:
    """Print ``greeting`` ``count`` times (keys ``--greeting`` and ``--count``)."""
    for i in range(count):
        console.log(greeting)
        if i + 1 < count:
            await sleep.sleep(1.0)
