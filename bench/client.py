"""A lean HTTP/1.1 client for the load generator: one keep-alive connection per virtual browser.

httpx spends about a millisecond of client CPU per request, more than Tobira's own work for a
request, so a benchmark driven by it measures mostly itself. This client does only what the
benchmark needs: write a request, read the status, headers and a Content-Length or chunked body,
keep the cookies. It runs on an asyncio Protocol (no stream objects, no per-request tasks).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field


class ProtocolError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    cookies: list[str]  # raw Set-Cookie values
    body: bytes

    def json(self):
        return json.loads(self.body)


class _Reader(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
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
        self.waiter = asyncio.get_running_loop().create_future()
        if self.buffer:
            self._try_complete()
        if self.closed and not self.waiter.done():
            self.waiter.set_exception(ProtocolError("connection closed"))
        return self.waiter

    def _try_complete(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for line in head[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookies.append(value)
            else:
                headers[name] = value
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            pos = start
            while True:
                line_end = self.buffer.find(b"\r\n", pos)
                if line_end < 0:
                    return
                size = int(bytes(self.buffer[pos:line_end]).split(b";")[0], 16)
                if len(self.buffer) < line_end + 2 + size + 2:
                    return
                body += self.buffer[line_end + 2:line_end + 2 + size]
                pos = line_end + 2 + size + 2
                if size == 0:
                    break
            consumed = pos
        else:
            length = 0 if status in (204, 304) else int(headers.get("content-length", "0"))
            if len(self.buffer) < start + length:
                return
            body = self.buffer[start:start + length]
            consumed = start + length
        del self.buffer[:consumed]
        self.waiter.set_result(Response(status, headers, cookies, bytes(body)))


@dataclass
class Browser:
    """One virtual browser: a connection, its cookies, and the headers a browser would send."""

    host: str
    port: int
    origin: str
    forwarded_for: str | None = None  # the client address a load balancer would report
    cookies: dict[str, str] = field(default_factory=dict)
    _proto: _Reader | None = None

    async def _connection(self) -> _Reader:
        if self._proto is None or self._proto.closed:
            loop = asyncio.get_running_loop()
            _, self._proto = await loop.create_connection(_Reader, self.host, self.port)
        return self._proto

    def forget_cookies(self) -> None:
        self.cookies.clear()

    async def request(self, method: str, path: str, body: bytes | None = None, *,
                      content_type: str = "application/json", timeout: float = 30.0) -> Response:
        proto = await self._connection()
        lines = [f"{method} {path} HTTP/1.1", f"Host: localhost:{self.port}", "Accept: application/json",
                 "User-Agent: tobira-bench/1"]
        if method != "GET":
            lines.append(f"Origin: {self.origin}")
        if self.forwarded_for:
            lines.append(f"X-Forwarded-For: {self.forwarded_for}")
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body is not None:
            lines.append(f"Content-Type: {content_type}")
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        waiter = proto.expect()
        proto.transport.write(head + body if body is not None else head)
        try:
            response = await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            proto.transport.close()
            raise
        for raw in response.cookies:
            pair, _, attributes = raw.partition(";")
            name, _, value = pair.partition("=")
            if "max-age=0" in attributes.lower() or not value:
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value.strip()
        if response.headers.get("connection", "").lower() == "close":
            proto.transport.close()
        return response

    async def post_json(self, path: str, payload) -> Response:
        return await self.request("POST", path, json.dumps(payload, separators=(",", ":")).encode())

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
