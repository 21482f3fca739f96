"""Pure-ASGI middleware, one job each (compare starlette/middleware/httpsredirect.py)."""

from __future__ import annotations

import logging
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import logs
from .responses import error_response, scope_language

access_log = logging.getLogger("tobira.access")
error_log = logging.getLogger("tobira.error")

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


class RequestLog:
    """A request id for every request (in the logs and the X-Request-ID header) and one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = secrets.token_hex(8)
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The path only: query strings may carry things that do not belong in logs.
            access_log.info("request", extra={
                "method": scope["method"], "path": scope["path"], "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "client": scope["client"][0] if scope.get("client") else None,
            })
            logs.request_id.reset(token)


class SecurityHeaders:
    """Headers every answer carries, errors and 404s included (security.md §25)."""

    CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = self.CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["X-Frame-Options"] = "DENY"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if self.hsts:
                    headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
                if not static or message["status"] >= 400:
                    # Pages and API answers may carry personal data: never keep them in a cache.
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ErrorGuard:
    """An unexpected exception becomes the contract's 500 body (JSON under /api), never a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            error_log.exception("unhandled error", extra={"path": scope["path"]})
            if not started:
                await error_response("internal_error", 500, scope_language(scope))(scope, receive, send)


class OriginCheck:
    """State-changing requests must come from one of our own origins (403 csrf_rejected).

    SameSite=Lax already keeps the cookie off most cross-site POSTs; the Origin header closes the
    rest (sibling subdomains count as same-site, not same-origin).
    """

    def __init__(self, app: ASGIApp, *, origins: tuple[str, ...]) -> None:
        self.app = app
        self.origins = {o.encode() for o in origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            origin = dict(scope["headers"]).get(b"origin")
            if origin is None or origin.lower() not in self.origins:
                return await error_response("csrf_rejected", 403, scope_language(scope))(scope, receive, send)
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 and the error body, before anything parses them."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = error_response("payload_too_large", 413, scope_language(scope))
        too_large.headers["Connection"] = "close"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > self.limit:
                    return await too_large(scope, receive, send)
            except ValueError:
                return await error_response("invalid_request", 400, scope_language(scope))(scope, receive, send)
        # Chunked or lying clients: read the whole body here, counting, before the app sees any of it.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                return await too_large(scope, receive, send)
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
