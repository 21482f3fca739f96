"""The JSON API: parse the body, call one domain function, answer in the contract's shape."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import login, policy, store
from ..context import Context
from ..errors import InvalidField, InvalidRequest, NotAuthenticated, ServiceError
from .auth import client, current_session, language, logged_in
from .responses import error_response

log = logging.getLogger("tobira.api")


async def read_json(request: Request) -> dict:
    """The body as a JSON object; an empty body is `{}` (bodiless POSTs)."""
    body = await request.body()
    if not body.strip():
        return {}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        # A form post cannot be JSON: refusing it closes the simplest cross-site request shape.
        raise ServiceError("unsupported_media_type", status=415)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest(reason="malformed JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest(reason="body is not a JSON object")
    return value


def text_field(body: dict, name: str, *, max_len: int, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidField(reason=f"{name} must be a string", field=name)
    if len(value) > max_len:
        raise InvalidField(reason=f"{name} is too long", field=name)
    return value


def bool_field(body: dict, name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidField(reason=f"{name} must be true or false", field=name)
    return value


def service_error(request: Request, exc: ServiceError) -> JSONResponse:
    log.info("request refused", extra={"code": exc.code, "status": exc.status, "reason": exc.reason})
    # `field` helps the log, not the customer: only the contract's extras go into the body.
    extra = {k: v for k, v in exc.extra.items() if k in ("attempts_left", "retry_after", "credential_id")}
    response = error_response(exc.code, exc.status, language(request), **extra)
    if "retry_after" in extra:
        response.headers["Retry-After"] = str(extra["retry_after"])
    return response


def _ctx(request: Request) -> Context:
    return request.app.state.ctx


def _login_answer(request: Request, step: login.LoginStep) -> JSONResponse:
    body = {"status": step.status}
    if step.redirect:
        body["redirect"] = step.redirect
    response = JSONResponse(body)
    cookies = request.app.state.cookies
    cookies.set_session(response, step.session_id)
    if step.device_token:
        cookies.set_device(response, step.device_token)
    return response


# --- legacy login ----------------------------------------------------------------------------


async def login_password(request: Request) -> Response:
    body = await read_json(request)
    customer_code = text_field(body, "customer_code", max_len=256)
    password = text_field(body, "password", max_len=1024)
    next_path = text_field(body, "next", max_len=1024, required=False)
    cookies = request.app.state.cookies
    step = await login.submit_password(
        _ctx(request), customer_code=customer_code.strip(), password=password,
        current_session=cookies.session_hash(request), device_token=cookies.device_token(request),
        next_path=next_path, client=client(request))
    return _login_answer(request, step)


async def login_code(request: Request) -> Response:
    body = await read_json(request)
    entered = text_field(body, "code", max_len=64)
    remember = bool_field(body, "remember_device", default=False)
    step = await login.submit_code(
        _ctx(request), session_id_hash=request.app.state.cookies.session_hash(request), entered=entered,
        remember_device=remember, client=client(request))
    return _login_answer(request, step)


async def login_code_resend(request: Request) -> Response:
    await read_json(request)
    await login.resend_code(_ctx(request), session_id_hash=request.app.state.cookies.session_hash(request),
                            client=client(request))
    return JSONResponse({"status": "code_sent"})


# --- session ---------------------------------------------------------------------------------


def _iso(value):
    return value.isoformat() if value else None


async def session_info(request: Request) -> Response:
    row = await logged_in(request)
    if row is None:
        raise NotAuthenticated()
    ctx = _ctx(request)
    user = await ctx.db.run(store.user_by_id, row.user_id)
    reason = policy.important_operations_reason(row, ctx.settings, ctx.clock())
    return JSONResponse({
        "customer_code": user.customer_code,
        "display_name": user.display_name,
        "auth_method": row.auth_method,
        "authenticated_at": _iso(row.authenticated_at),
        "verified_at": _iso(row.verified_at),
        "important_operations_allowed": reason is None,
        "important_operations_reason": reason,
        "passkey_count": 0,  # passkeys arrive with the passkey issue
    })


async def logout(request: Request) -> Response:
    await read_json(request)
    row = await current_session(request)
    if row is not None:
        await login.logout(_ctx(request), row, client(request))
    response = Response(status_code=204)
    request.app.state.cookies.clear_session(response)
    return response
