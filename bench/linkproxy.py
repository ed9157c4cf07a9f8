"""A slow link on loopback: a TCP forwarder adding a delay each way and pacing to a bandwidth.

For the scan benchmark: what a scan costs over a real network, which loopback hides. Each
direction on its own: a chunk that arrives at t leaves at t + ``delay`` at the earliest, and
no faster than ``bits_per_second`` allows (a chunk of n bytes occupies the link n·8/rate s).

    with LinkProxy("127.0.0.1", 143, delay=0.020, bits_per_second=50e6) as link:
        ...  # connect to 127.0.0.1:link.port; link.bytes_down counts what came back
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType
from typing import Self

PIECE = 16_384  # pacing granularity: 2.6 ms of a 50 Mbit/s link


class LinkProxy:
    def __init__(self, host: str, port: int, *, delay: float, bits_per_second: float) -> None:
        self.target = (host, port)
        self.delay = delay
        self.rate = bits_per_second / 8  # bytes per second
        self.port = 0
        self.bytes_down = 0
        self.bytes_up = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        started.result(timeout=10)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pump(server_r, client_w, "down"),
                             self._pump(client_r, server_w, "up"),
                             return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            while data := await reader.read(65_536):
                arrived = time.monotonic()
                for start in range(0, len(data), PIECE):
                    queue.put_nowait((arrived, data[start:start + PIECE]))
            queue.put_nowait((0.0, b""))

        async def deliver() -> None:
            # When the link is done with what it carries. Scheduled from arrival times, not
            # from when this loop wakes up: a late wake-up of the event loop is the proxy's
            # delay, not the link's, and must not leave the link idle.
            free = 0.0
            while True:
                arrived, piece = await queue.get()
                if not piece:
                    break
                free = max(free, arrived + self.delay) + len(piece) / self.rate
                now = time.monotonic()
                if free > now:
                    await asyncio.sleep(free - now)
                writer.write(piece)
                await writer.drain()
                if direction == "down":
                    self.bytes_down += len(piece)
                else:
                    self.bytes_up += len(piece)
            writer.close()

        await asyncio.gather(receive(), deliver())
