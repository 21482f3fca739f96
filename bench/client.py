"""A lean HTTP/1.1 client for the load generator: one keep-alive connection per virtual browser.

httpx spends about a millisecond of client CPU per request, more than Tobira's own work for a
request, so a benchmark driven by it measures mostly itself. This client does only what the
benchmark needs: write a request, read the status and a Content-Length or chunked body, keep the
cookies, honour `Connection: close`. It runs on an asyncio Protocol (no stream objects, no
per-request tasks); of the response headers it looks only at the few that frame the body or set
cookies, with one regular expression over the header block.
"""

from __future__ import annotations

import asyncio
import json
import re


class ProtocolError(Exception):
    pass


# The response headers this client acts on (names are case-insensitive; values end at the line).
_HEADERS = re.compile(rb"\r\n(content-length|transfer-encoding|set-cookie|connection|location)[ \t]*:[ \t]*([^\r]*)",
                      re.I)


class Response:
    __slots__ = ("status", "cookies", "body", "close", "location")

    def __init__(self, status: int, cookies: list[str], body: bytes, close: bool, location: str | None = None) -> None:
        self.status = status
        self.cookies = cookies  # raw Set-Cookie values
        self.body = body
        self.close = close  # the server said Connection: close
        self.location = location  # a redirect's target

    def json(self):
        return json.loads(self.body)


class _Head:
    """What a response's header block says about the body, the cookies and the connection."""

    __slots__ = ("status", "length", "chunked", "cookies", "close", "location")

    def __init__(self, block: bytes) -> None:
        self.status = int(block[9:12])  # "HTTP/1.1 200 OK"
        self.length = 0
        self.chunked = self.close = False
        self.cookies: list[str] = []
        self.location: str | None = None
        for name, value in _HEADERS.findall(block):
            name = name.lower()
            if name == b"content-length":
                self.length = int(value)
            elif name == b"set-cookie":
                self.cookies.append(value.decode("latin-1"))
            elif name == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif name == b"location":
                self.location = value.decode("latin-1")
            else:
                self.close = value.strip().lower() == b"close"
        if self.status in (204, 304):
            self.length = 0


class _Reader(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            self._try_complete()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ProtocolError(f"connection closed: {exc}"))

    def expect(self) -> asyncio.Future:
        self.waiter = self.loop.create_future()
        if self.buffer:
            self._try_complete()
        if self.closed and not self.waiter.done():
            self.waiter.set_exception(ProtocolError("connection closed"))
        return self.waiter

    def time_out(self) -> None:
        """The answer is late: give up on it and on the connection (it may still arrive on it)."""
        if not self.waiter.done():
            self.waiter.set_exception(asyncio.TimeoutError())
            self.transport.close()

    def _try_complete(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = _Head(bytes(self.buffer[:end]))
        start = end + 4
        if head.chunked:
            framed = _dechunk(self.buffer, start)
            if framed is None:
                return
            body, consumed = framed
        else:
            consumed = start + head.length
            if len(self.buffer) < consumed:
                return
            body = bytes(self.buffer[start:consumed])
        del self.buffer[:consumed]
        self.waiter.set_result(Response(head.status, head.cookies, body, head.close, head.location))


def _dechunk(buffer: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at pos and where it ends, or None while it is incomplete."""
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
        if len(buffer) < line_end + 2 + size + 2:
            return None
        body += buffer[line_end + 2:line_end + 2 + size]
        pos = line_end + 2 + size + 2
        if size == 0:
            return bytes(body), pos


class Browser:
    """One virtual browser: a connection, its cookies, and the headers a browser would send."""

    def __init__(self, host: str, port: int, origin: str, forwarded_for: str | None = None) -> None:
        self.host, self.port, self.origin = host, port, origin
        self.forwarded_for = forwarded_for  # the client address a load balancer would report
        self.cookies: dict[str, str] = {}
        self._proto: _Reader | None = None

    async def _connect(self) -> _Reader:
        _, self._proto = await asyncio.get_running_loop().create_connection(_Reader, self.host, self.port)
        return self._proto

    def forget_cookies(self) -> None:
        self.cookies.clear()

    def _head(self, method: str, path: str, body: bytes | None, content_type: str) -> bytes:
        extra = ""
        if method != "GET":
            extra += f"Origin: {self.origin}\r\n"
        if self.forwarded_for:
            extra += f"X-Forwarded-For: {self.forwarded_for}\r\n"
        if self.cookies:
            extra += "Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()) + "\r\n"
        if body is not None:
            extra += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        return (f"{method} {path} HTTP/1.1\r\nHost: localhost:{self.port}\r\nAccept: application/json\r\n"
                f"User-Agent: tobira-bench/1\r\n{extra}\r\n").encode("latin-1")

    async def request(self, method: str, path: str, body: bytes | None = None, *,
                      content_type: str = "application/json", timeout: float = 30.0) -> Response:
        proto = self._proto
        if proto is None or proto.closed:
            proto = await self._connect()
        head = self._head(method, path, body, content_type)
        waiter = proto.expect()
        # A timer handle rather than asyncio.wait_for, which adds a future and callbacks of its own.
        timer = proto.loop.call_later(timeout, proto.time_out)
        proto.transport.write(head + body if body is not None else head)
        try:
            response = await waiter
        finally:
            timer.cancel()
        for raw in response.cookies:
            self._keep_cookie(raw)
        if response.close:
            proto.transport.close()
        return response

    def _keep_cookie(self, raw: str) -> None:
        pair, _, attributes = raw.partition(";")
        name, _, value = pair.partition("=")
        if "max-age=0" in attributes.lower() or not value:
            self.cookies.pop(name.strip(), None)
        else:
            self.cookies[name.strip()] = value.strip()

    async def post_json(self, path: str, payload) -> Response:
        return await self.request("POST", path, json.dumps(payload, separators=(",", ":")).encode())

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
