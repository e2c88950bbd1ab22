"""A connection that ends while its application paused reading still hands over everything it received."""

from __future__ import annotations

import asyncio

from tcpip_support import Wire, pair, run, settle


def test_data_held_by_a_paused_reader_is_read_before_connection_lost() -> None:
    """Both FINs cross while the server's StreamReader is paused (its buffer is full): the held
    data and the end of file reach it before connection_lost, as a socket's would."""
    async def main() -> None:
        a, b = await pair(Wire())
        body = bytes(range(256)) * 80  # 20 KiB: within the window, beyond the reader's limit
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write_eof()  # our FIN first: the connection ends as soon as the peer's comes
            await asyncio.sleep(5)  # not reading: the reader pauses the transport
            got.set_result(await reader.read())

        await b.tcp.start_server(handler, 7000, limit=1024)
        reader, writer = await a.tcp.connect("10.0.0.2", 7000)
        writer.write(body)
        writer.write_eof()
        assert await reader.read() == b""
        await settle(1)
        server = next(iter(b.tcp.connections.values()), None)
        assert server is None or server.lost  # the connection is over ...
        assert await got == body  # ... and the application still read all of it
    run(main())
