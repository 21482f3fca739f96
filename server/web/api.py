"""The JSON API: parse the body, call one domain function, answer in the contract's shape."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import authorization, ceremonies, login, metrics, passkeys, policy, sessions, signed_in, stepup, verify
from ..context import Context
from ..errors import InvalidRequest, NotAuthenticated, ServiceError, UnsupportedMediaType
from ..openapi import document as openapi_document
from .auth import client, current_session, language, logged_in
from .bodies import (Authorize, B, CodeEntry, EmailChange, LoginOptions, NoBody, PasskeyRegistration, PasskeyRename,
                     PasswordLogin, RegistrationOptions, StepUpCode, parse)
from .responses import error_response

log = logging.getLogger("tobira.api")


async def read_json(request: Request, *, max_bytes: int | None = None) -> dict:
    """The body as a JSON object; an empty body is `{}` (bodiless POSTs).

    max_bytes: a body announced bigger than this is refused (400) without being read or parsed."""
    if max_bytes is not None:
        try:
            announced = int(request.headers.get("content-length", "0"))
        except ValueError:
            announced = 0
        if announced > max_bytes:
            raise InvalidRequest(reason=f"body of {announced} bytes is larger than any WebAuthn response")
    body = await request.body()
    if max_bytes is not None and len(body) > max_bytes:
        raise InvalidRequest(reason=f"body of {len(body)} bytes is larger than any WebAuthn response")
    if not body.strip():
        return {}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        # A form post cannot be JSON: refusing it closes the simplest cross-site request shape.
        raise UnsupportedMediaType()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest(reason="malformed JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest(reason="body is not a JSON object")
    _check_text(body, value)
    return value


def _check_text(body: bytes, value: dict) -> None:
    """Every string, key or value, at any depth, is Unicode text (UTF-8 can encode it).

    JSON's grammar admits a lone surrogate (`"\\udfff"`, or its raw bytes, which json.loads lets
    through). It is no text at all: UTF-8 cannot encode it, and it failed deep inside (a hash, a
    query, a log line) as a 500. RFC 8259 §8.2 leaves such a string's meaning unpredictable and
    I-JSON (RFC 7493 §2.1) forbids it: the body is malformed, 400 like any malformed JSON (not 422:
    no field is wrong, the document is). Plain ASCII without a backslash-u escape cannot hold one:
    nearly every body, WebAuthn responses included, skips the walk."""
    if body.isascii() and b"\\u" not in body:
        return
    pending: list = [value]
    while pending:  # a loop, not recursion: the nesting json.loads accepts is not a stack to overflow
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequest(reason="a string holds a lone surrogate") from None
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


async def read_body(request: Request, model: type[B]) -> B:
    """The body as its model (web/bodies.py): 400 for what is no JSON object, 422 for a bad field."""
    return parse(model, await read_json(request))


def service_error(request: Request, exc: ServiceError) -> JSONResponse:
    log.info("request refused", extra={"code": exc.code, "status": exc.status, "reason": exc.reason})
    metrics.REFUSALS.labels(exc.code).inc()
    # `field` helps the log, not the customer: only the code's own extras go into the body.
    return error_response(exc.code, language(request), status=exc.status, wording=exc.extra,
                          message_key=exc.message_key, **exc.contract_extras())


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
    body = await read_body(request, PasswordLogin)
    cookies = request.app.state.cookies
    step = await login.submit_password(
        _ctx(request), customer_code=body.customer_code.strip(), password=body.password,
        current_session=cookies.session_hash(request), device_token=cookies.device_token(request),
        next_path=body.next, client=client(request))
    return _login_answer(request, step)


async def login_code(request: Request) -> Response:
    body = await read_body(request, CodeEntry)
    step = await login.submit_code(
        _ctx(request), session_id_hash=request.app.state.cookies.session_hash(request), entered=body.code,
        remember_device=body.remember_device, client=client(request))
    return _login_answer(request, step)


async def login_code_resend(request: Request) -> Response:
    await read_body(request, NoBody)
    await login.resend_code(_ctx(request), session_id_hash=request.app.state.cookies.session_hash(request),
                            client=client(request))
    return JSONResponse({"status": "code_sent"})


# --- session ---------------------------------------------------------------------------------


def _iso(value):
    return value.isoformat() if value else None


async def session_info(request: Request) -> Response:
    ctx = _ctx(request)
    id_hash = request.app.state.cookies.session_hash(request)

    found = await ctx.db.run(sessions.logged_in_with_customer, id_hash, now=ctx.clock(),
                             settings=ctx.settings) if id_hash else None
    if found is None:
        raise NotAuthenticated()
    row = found.session
    refusal = policy.important_operations_reason(row, ctx.settings, ctx.clock())
    return JSONResponse({
        "customer_code": found.customer_code,
        "display_name": found.display_name,
        "auth_method": row.auth_method,
        "authenticated_at": _iso(row.authenticated_at),
        "verified_at": _iso(row.verified_at),
        "important_operations_allowed": refusal is None,
        "important_operations_reason": refusal.reason if refusal else None,
        "hold_until": _iso(refusal.hold_until) if refusal else None,
        "passkey_count": found.passkey_count,
    })


async def logout(request: Request) -> Response:
    await read_body(request, NoBody)
    row = await current_session(request)
    if row is not None:
        await login.logout(_ctx(request), row, client(request))
    response = Response(status_code=204)
    request.app.state.cookies.clear_session(response)
    return response


# --- passkey login ---------------------------------------------------------------------------


async def _require_login(request: Request):
    row = await logged_in(request)
    if row is None:
        raise NotAuthenticated()
    return row


async def passkey_login_options(request: Request) -> Response:
    body = await read_body(request, LoginOptions)
    begun = await ceremonies.begin_login(_ctx(request), session_id_hash=request.app.state.cookies.session_hash(request),
                                         next_path=body.next, client=client(request))
    response = JSONResponse(begun.options)
    if begun.new_session_id:
        request.app.state.cookies.set_session(response, begun.new_session_id)
    return response


async def passkey_login_verify(request: Request) -> Response:
    ctx, who = _ctx(request), client(request)
    await ctx.throttle.turn_away_known(ip=who.ip)  # before reading a body it would refuse anyway
    try:
        body = await read_json(request, max_bytes=verify.MAX_AUTHENTICATION_JSON)
    except InvalidRequest:
        await ceremonies.count_malformed(ctx, who)
        raise
    step = await ceremonies.complete_login(_ctx(request), session_id_hash=request.app.state.cookies.session_hash(request),
                                           credential=body, client=client(request))
    return _login_answer(request, step)


# --- step-up ---------------------------------------------------------------------------------


def _stepped_up_answer(request: Request, done) -> JSONResponse:
    response = JSONResponse({"status": "ok", "verified_at": done.verified_at.isoformat()})
    request.app.state.cookies.set_session(response, done.session_id)
    return response


async def step_up_code_send(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_login(request)
    await stepup.send_code(_ctx(request), session=session, client=client(request))
    return JSONResponse({"status": "code_sent"})


async def step_up_code(request: Request) -> Response:
    raw = await read_json(request)
    session = await _require_login(request)  # before the fields: a stranger learns nothing of them
    body = parse(StepUpCode, raw)
    done = await stepup.check_code(_ctx(request), session=session, entered=body.code, client=client(request))
    return _stepped_up_answer(request, done)


async def step_up_passkey_options(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_login(request)
    return JSONResponse(await ceremonies.begin_step_up(_ctx(request), session=session))


async def step_up_passkey_verify(request: Request) -> Response:
    session = await _require_login(request)  # before the body: a stranger's junk is not even read
    body = await read_json(request, max_bytes=verify.MAX_AUTHENTICATION_JSON)
    done = await ceremonies.complete_step_up(_ctx(request), session=session, credential=body, client=client(request))
    return _stepped_up_answer(request, done)


# --- passkey management ----------------------------------------------------------------------


async def passkey_list(request: Request) -> Response:
    session = await _require_login(request)
    ctx = _ctx(request)
    views = await ctx.db.run(passkeys.list_views, session.user_id, ctx.clock())
    return JSONResponse({"passkeys": [v.as_json() for v in views], "limit": ctx.settings.max_passkeys})


async def passkey_register_options(request: Request) -> Response:
    body = await read_body(request, RegistrationOptions)
    session = await _require_login(request)
    return JSONResponse(await ceremonies.begin_registration(_ctx(request), session=session,
                                                            security_key=body.authenticator == "security-key",
                                                            conditional=body.mediation == "conditional"))


async def passkey_register_verify(request: Request) -> Response:
    session = await _require_login(request)  # before the body: a stranger's junk is not even read
    body = parse(PasskeyRegistration, await read_json(request, max_bytes=verify.MAX_REGISTRATION_JSON))
    view = await ceremonies.complete_registration(_ctx(request), session=session, credential=body.credential,
                                                  name=body.name, client=client(request))
    return JSONResponse({"passkey": view.as_json()}, status_code=201)


async def passkey_rename(request: Request) -> Response:
    raw = await read_json(request)
    session = await _require_login(request)  # before the fields: a stranger learns nothing of them
    body = parse(PasskeyRename, raw)
    view = await passkeys.rename(_ctx(request), session=session, passkey_id=request.path_params["passkey_id"],
                                 name=body.name, client=client(request))
    return JSONResponse({"passkey": view.as_json()})


async def passkey_delete(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_login(request)
    await passkeys.delete(_ctx(request), session=session, passkey_id=request.path_params["passkey_id"],
                          client=client(request))
    return Response(status_code=204)


# --- where the customer is signed in ----------------------------------------------------------


async def session_list(request: Request) -> Response:
    session = await _require_login(request)
    ctx = _ctx(request)
    found = await ctx.db.run(signed_in.overview, session, settings=ctx.settings, now=ctx.clock(),
                             lang=language(request))
    return JSONResponse(signed_in.as_json(found))


async def session_end(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_login(request)
    ctx = _ctx(request)
    sid = request.path_params["session_id"]
    await ctx.db.run(signed_in.end_session, session, sid, client=client(request), now=ctx.clock())
    ctx.logouts.wake()
    response = Response(status_code=204)
    if sid == session.sid:  # this browser's own: logged out here too
        request.app.state.cookies.clear_session(response)
    return response


async def sessions_end_others(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_login(request)
    ctx = _ctx(request)
    await ctx.db.run(signed_in.end_others, session, client=client(request), now=ctx.clock())
    ctx.logouts.wake()
    return Response(status_code=204)


async def trusted_device_forget(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_login(request)
    ctx = _ctx(request)
    await ctx.db.run(signed_in.forget_device, session, request.path_params["device_id"], client=client(request),
                     now=ctx.clock())
    return Response(status_code=204)


# --- decisions for other services ------------------------------------------------------------


async def authorize(request: Request) -> Response:
    body = await read_body(request, Authorize)
    allowed = await authorization.authorize(_ctx(request), session=await logged_in(request), operation=body.operation,
                                            client=client(request))
    return JSONResponse({"allowed": True, "customer_code": allowed.customer_code, "auth_method": allowed.auth_method})


async def auth_check(request: Request) -> Response:
    """Forward auth (nginx auth_request, Traefik forwardAuth): 200 with who it is, else 401/403."""
    operation = request.query_params.get("operation")
    allowed = await authorization.authorize(_ctx(request), session=await logged_in(request), operation=operation,
                                            client=client(request))
    return Response(status_code=200, headers={"X-Tobira-Customer": allowed.customer_code,
                                              "X-Tobira-Auth-Method": allowed.auth_method})


async def change_email(request: Request) -> Response:
    body = await read_body(request, EmailChange)
    changed = await authorization.change_email(_ctx(request), session=await logged_in(request), email=body.email,
                                               client=client(request))
    return JSONResponse({"status": "ok", "email": changed})


async def unlock_password(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_login(request)
    lifted = await login.unlock_password(_ctx(request), session=session, client=client(request))
    return JSONResponse({"status": "ok", "unlocked": lifted})


# --- for load balancers and tools ------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """The process is up and serving (no dependencies checked)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the database answers. 503 with the contract's body when it does not."""
    await _ctx(request).db.ping()
    return JSONResponse({"status": "ok"})


async def openapi(request: Request) -> Response:
    """The OpenAPI description of this API (server/openapi.py), with this instance's origins and cookie names."""
    cookies = request.app.state.cookies
    return JSONResponse(openapi_document(origins=_ctx(request).settings.page_origins, session_cookie=cookies.session_name,
                                         device_cookie=cookies.device_name, staff_cookie=cookies.staff_name))
