"""The one pure-ASGI middleware every request passes (compare starlette/middleware/httpsredirect.py).

It does five small jobs, in this order, each in a function of its own below:

1. a request id (in every log line and the X-Request-ID header) and one access-log line;
2. the security headers every answer carries, errors and 404s included (security.md §25);
3. an unexpected exception becomes the contract's 500 body, never a traceback;
4. bodies over the limit are refused with 413 before anything parses them;
5. state-changing requests must come from one of our own origins (403 csrf_rejected).

They were five middleware classes once. Each ASGI layer costs a coroutine, a wrapped `send` and
a header rewrite per request: together 50 microseconds of a bare request's 13, measured in-process,
and a passkey login makes three requests. One layer that builds its headers once does the same
for a fraction (bench/, README "Speed").
"""

from __future__ import annotations

import logging
import random
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import logs
from .responses import error_response, scope_language

access_log = logging.getLogger("tobira.access")
error_log = logging.getLogger("tobira.error")

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# OpenID Connect's server-to-server endpoints: called by an app's server (or with a Bearer token),
# never with the customer's cookies, so there is no cross-site request to forge (contract). And
# /oauth/logout, which an app may POST to from its own site: it ends a session only when an ID
# token of that very session says so, or after the customer confirms on our page (oidc_logout.py).
NO_ORIGIN_CHECK = frozenset({"/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/userinfo",
                             "/oauth/logout"})

# A request id only has to be unique, not secret: a seeded PRNG, not a system call per request.
_request_ids = random.Random().getrandbits

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def security_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    """What every answer carries (Cache-Control is decided per answer, see Gate.__init__)."""
    headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if hsts:
        headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
    return headers


_NO_STORE = (b"cache-control", b"no-store")


class Gate:
    def __init__(self, app: ASGIApp, *, origins: tuple[str, ...], limit: int, hsts: bool) -> None:
        self.app = app
        self.origins = {o.encode() for o in origins}
        self.limit = limit
        common = security_headers(hsts=hsts)
        # (headers we add, names of a response's own headers that ours replace): pages and API
        # answers may carry personal data, so they are never cached; static files keep their own
        # caching unless the answer is an error.
        self.private = (common + [_NO_STORE], {name for name, _ in common} | {_NO_STORE[0]})
        self.static = (common, {name for name, _ in common})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = f"{_request_ids(64):016x}"
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        answer = {"status": 500, "started": False}
        static = scope["path"].startswith("/static/")

        async def send_answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["started"] = message["status"], True
                message["headers"] = self._finish_headers(message, rid, static)
            await send(message)

        try:
            refusal, receive = await self._admit(scope, receive)
            await (refusal or self.app)(scope, receive, send_answer)
        except Exception:
            error_log.exception("unhandled error", extra={"path": scope["path"]})
            if not answer["started"]:
                await error_response("internal_error", scope_language(scope))(scope, receive, send_answer)
        finally:
            # The path only: query strings may carry things that do not belong in logs.
            access_log.info("request", extra={
                "method": scope["method"], "path": scope["path"], "status": answer["status"],
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "client": scope["client"][0] if scope.get("client") else None,
            })
            logs.request_id.reset(token)

    def _finish_headers(self, message: Message, rid: str, static: bool) -> list:
        ours, replaced = self.static if static and message["status"] < 400 else self.private
        kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in replaced]
        return kept + ours + [(b"x-request-id", rid.encode())]

    async def _admit(self, scope: Scope, receive: Receive):
        """(a refusing ASGI app or None, the receive that replays the body already read)."""
        declared = origin = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"origin":
                origin = value
        too_large = self._body_limit_refusal(scope, declared)
        if too_large is not None:
            return too_large, receive
        body, complete = await _read_body(receive, self.limit)
        if body is None:
            return (self._too_large(scope) if complete else _gone), receive
        if (scope["method"] in STATE_CHANGING and (origin is None or origin.lower() not in self.origins)
                and scope["path"] not in NO_ORIGIN_CHECK):
            return error_response("csrf_rejected", scope_language(scope)), receive
        return None, _replay(body, receive)

    def _body_limit_refusal(self, scope: Scope, declared: bytes | None):
        if declared is None:
            return None
        try:
            if int(declared) > self.limit:
                return self._too_large(scope)
        except ValueError:
            return error_response("invalid_request", scope_language(scope))
        return None

    def _too_large(self, scope: Scope):
        response = error_response("payload_too_large", scope_language(scope))
        response.headers["Connection"] = "close"
        return response


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The whole body, counted as it comes (chunked or lying clients): (body, True); (None, True)
    when it passes the limit; (None, False) when the client went away."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            return None, True
        chunks.append(body)
        if not message.get("more_body", False):
            return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), True


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _gone(scope: Scope, receive: Receive, send: Send) -> None:
    """The client disconnected before its body arrived: nobody to answer."""
