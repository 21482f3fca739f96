"""The contract's error body, in the request's language."""

from __future__ import annotations

from starlette.responses import JSONResponse

from ..errors import code_named
from ..i18n import choose_language, message


def error_response(code: str, lang: str, *, status: int | None = None, wording: dict | None = None,
                   message_key: str | None = None, **extra) -> JSONResponse:
    """The answer for error `code` (declared in errors.py) at its own status, or at `status` when the
    caller passes one on (a ServiceError's, an HTTPException's). `extra` goes into the body (the
    contract's extras); `wording` only fills in the message."""
    declared = code_named(code)
    text = message(message_key or code, lang, **{**(wording or {}), **extra})
    body = {"error": {"code": code, "message": text, **extra}}
    # RFC 9110 §10.2.3: the same wait for clients that read headers (proxies, SDKs, curl --retry).
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    return JSONResponse(body, status_code=status or declared.status, headers=headers)


def scope_language(scope) -> str:
    """The language of a raw ASGI request (for middleware, before there is a Request object)."""
    headers = dict(scope.get("headers") or [])
    query = scope.get("query_string", b"").decode("latin-1")
    lang = None
    for part in query.split("&"):
        if part.startswith("lang="):
            lang = part[5:]
    return choose_language(lang, headers.get(b"accept-language", b"").decode("latin-1"))
