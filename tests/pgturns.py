"""A TCP proxy in front of PostgreSQL that counts round trips.

A round trip is a turn of the conversation: the client sends, then waits for the server. The proxy
counts each burst of client bytes that follows server bytes (or starts the connection), on every
connection through it, whatever the driver does (pipelined statements count once, as they should).
Used by bench/roundtrips.py and the tests of the login path's round trips.
"""

from __future__ import annotations

import asyncio
import socket
import threading


class TurnCounter:
    """Listens on 127.0.0.1:<port> and forwards to (host, port); `turns` counts round trips."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        self.target = (host, port)
        self.turns = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name="pg-turns", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def reset(self) -> int:
        """The turns counted since the last reset."""
        with self._lock:
            counted, self.turns = self.turns, 0
            return counted

    def close(self) -> None:
        async def shutdown() -> None:  # end the connections' pumps before the loop stops
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _serve(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        state = {"client_spoke_last": False}

        async def pump(reader, writer, from_client: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if from_client and not state["client_spoke_last"]:
                        with self._lock:
                            self.turns += 1
                    state["client_spoke_last"] = from_client
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        try:
            await asyncio.gather(pump(client_reader, server_writer, True), pump(server_reader, client_writer, False))
        except asyncio.CancelledError:  # close(): the connection ends with the proxy
            pass
