"""The staff console's JSON API (/api/admin): staff sign in with passkeys only, on their own cookie;
every customer action carries a reason and lands in the audit trail (support.py, audit.py)."""

from __future__ import annotations

import functools
import ipaddress

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import audit, staff, staff_auth, store_staff, support, verify
from ..audit import Actor
from ..context import Context
from ..errors import InvalidField, NotAuthenticated, NotFound, StaffRefusal
from .api import read_body, read_json
from .auth import client, language
from .bodies import NoBody, StaffAction, StaffEnrolment, StaffMember, parse


def _ctx(request: Request) -> Context:
    return request.app.state.ctx


def from_admin_network(request: Request) -> bool:
    """TOBIRA_ADMIN_NETWORKS: the console exists only for these addresses (all when unset)."""
    networks = _ctx(request).settings.admin_networks
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(client(request).ip or "")
    except ValueError:
        return False
    return any(ip in net for net in networks)


def console(handler):
    """Every /api/admin handler: a 404 like any unknown path from outside TOBIRA_ADMIN_NETWORKS."""
    @functools.wraps(handler)
    async def answer(request: Request) -> Response:
        if not from_admin_network(request):
            raise NotFound(reason="the staff console is not reachable from this address")
        return await handler(request)
    return answer


async def staff_session(request: Request) -> staff.StaffSession | None:
    """This browser's live staff session (its own cookie; a customer's session never counts)."""
    state = request.scope.setdefault("state", {})
    if "tobira_staff" not in state:
        id_hash = request.app.state.cookies.staff_session_hash(request)
        ctx = _ctx(request)
        state["tobira_staff"] = await ctx.db.run(staff.load_session, id_hash, now=ctx.clock()) if id_hash else None
    return state["tobira_staff"]


async def _require_staff(request: Request, *, admin: bool = False) -> staff.StaffSession:
    found = await staff_session(request)
    if found is None:
        raise NotAuthenticated(reason="no staff session")
    if admin and found.role != "admin":
        raise StaffRefusal("forbidden", reason="admin only")
    return found


def _actor(request: Request, session: staff.StaffSession) -> Actor:
    return Actor.staff(session.member, client(request).ip)


def _page(request: Request) -> int:
    raw = request.query_params.get("page", "0")
    if not raw.isdigit() or len(raw) > 6:
        raise InvalidField(reason="page is a number from 0", field="page")
    return int(raw)


def _signed_in(request: Request, done: staff_auth.SignedIn, status: int) -> Response:
    response = JSONResponse({"name": done.member.name, "role": done.member.role}, status_code=status)
    request.app.state.cookies.set_staff_session(response, done.session_id)
    return response


# --- enrolment, sign-in, session -------------------------------------------------------------------


@console
async def enrol_options(request: Request) -> Response:
    body = await read_body(request, StaffEnrolment)
    cookies = request.app.state.cookies
    begun = await staff_auth.begin_enrolment(_ctx(request), name=body.name, code=body.enrolment_code,
                                             browser=cookies.staff_ceremony(request))
    response = JSONResponse(begun.options)
    cookies.set_staff_ceremony(response, begun.browser)
    return response


@console
async def enrol_verify(request: Request) -> Response:
    raw = await read_json(request, max_bytes=verify.MAX_REGISTRATION_JSON)
    done = await staff_auth.complete_enrolment(_ctx(request), credential=raw,
                                               browser=request.app.state.cookies.staff_ceremony(request),
                                               client=client(request))
    return _signed_in(request, done, 201)


@console
async def login_options(request: Request) -> Response:
    await read_body(request, NoBody)
    cookies = request.app.state.cookies
    begun = await staff_auth.begin_login(_ctx(request), browser=cookies.staff_ceremony(request),
                                         client=client(request))
    response = JSONResponse(begun.options)
    cookies.set_staff_ceremony(response, begun.browser)
    return response


@console
async def login_verify(request: Request) -> Response:
    raw = await read_json(request, max_bytes=verify.MAX_AUTHENTICATION_JSON)
    done = await staff_auth.complete_login(_ctx(request), credential=raw,
                                           browser=request.app.state.cookies.staff_ceremony(request),
                                           client=client(request))
    return _signed_in(request, done, 200)


@console
async def logout(request: Request) -> Response:
    await read_body(request, NoBody)
    found = await staff_session(request)
    if found is not None:
        await _ctx(request).db.run(store_staff.end_session, found.id_hash)
    response = Response(status_code=204)
    request.app.state.cookies.clear_staff_session(response)
    return response


@console
async def session_info(request: Request) -> Response:
    found = await _require_staff(request)
    return JSONResponse({"name": found.name, "role": found.role})


# --- customers ---------------------------------------------------------------------------------------


@console
async def customers(request: Request) -> Response:
    await _require_staff(request)
    query = request.query_params.get("q", "")
    if len(query) > 254:
        raise InvalidField(reason="q is at most 254 characters", field="q")
    found = await _ctx(request).db.run(support.find, query, page=_page(request)) if query.strip() else []
    return JSONResponse({"customers": found})


@console
async def customer(request: Request) -> Response:
    session = await _require_staff(request)
    ctx = _ctx(request)
    shown = await ctx.db.run(support.show, ctx, _actor(request, session), request.path_params["code"],
                             now=ctx.clock(), lang=language(request))
    return JSONResponse(shown)


@console
async def customer_action(request: Request) -> Response:
    raw = await read_json(request)
    session = await _require_staff(request)
    body = parse(StaffAction, raw)
    ctx = _ctx(request)
    outcome = await ctx.db.run(support.act, ctx, _actor(request, session), request.path_params["code"], body.action,
                               " ".join(body.reason.split()), email=body.email, now=ctx.clock())
    ctx.outbox.wake()
    if outcome.request_id is None:
        return JSONResponse({"status": outcome.status})
    return JSONResponse({"status": outcome.status, "request_id": outcome.request_id}, status_code=202)


# --- approvals, audit ------------------------------------------------------------------------------


@console
async def approvals(request: Request) -> Response:
    await _require_staff(request)
    ctx = _ctx(request)
    return JSONResponse({"requests": await ctx.db.run(support.pending, ctx.clock(), page=_page(request))})


@console
async def approve(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_staff(request)
    ctx = _ctx(request)
    outcome = await ctx.db.run(support.approve, ctx, _actor(request, session), request.path_params["request_id"],
                               now=ctx.clock())
    ctx.outbox.wake()
    return JSONResponse({"status": outcome.status})


AUDIT_PAGE = 100


@console
async def audit_log(request: Request) -> Response:
    await _require_staff(request, admin=True)
    q = request.query_params
    csv_wanted = q.get("format") == "csv"
    offset = 0 if csv_wanted else _page(request) * AUDIT_PAGE
    entries = await _ctx(request).db.run(lambda db: store_staff.audit_entries(
        db, staff_name=q.get("staff") or None, customer_code=q.get("customer") or None,
        action=q.get("action") or None, limit=None if csv_wanted else AUDIT_PAGE, offset=offset))
    if csv_wanted:
        return Response(audit.as_csv(entries), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="tobira-audit.csv"'})
    return JSONResponse({"entries": [audit.as_json(e) for e in entries]})


# --- staff management (admins) ---------------------------------------------------------------------


def _staff_action(fn, action: str):
    """An admin's change to a staff account, audited in the same transaction."""
    def run(db, actor: Actor, name: str, now):
        try:
            result = fn(db, name, now=now)
        except staff.StaffError as exc:
            raise InvalidField(reason=str(exc), field="name") from None
        audit.record(db, actor, action, now=now, reason=name)
        return result
    return run


@console
async def staff_add(request: Request) -> Response:
    raw = await read_json(request)
    session = await _require_staff(request, admin=True)
    body = parse(StaffMember, raw)
    ctx = _ctx(request)

    def add(db, name, now):
        return staff.add(db, name, body.role, now=now)[1]

    code = await ctx.db.run(_staff_action(add, "staff_added"), _actor(request, session), body.name, ctx.clock())
    return JSONResponse({"name": body.name, "role": body.role, "enrolment_code": code}, status_code=201)


@console
async def staff_disable(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_staff(request, admin=True)
    ctx = _ctx(request)
    await ctx.db.run(_staff_action(staff.disable, "staff_disabled"), _actor(request, session),
                     request.path_params["name"], ctx.clock())
    return JSONResponse({"status": "done"})


@console
async def staff_reset_passkeys(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_staff(request, admin=True)
    ctx = _ctx(request)
    code = await ctx.db.run(_staff_action(staff.reset_passkeys, "staff_passkeys_reset"), _actor(request, session),
                            request.path_params["name"], ctx.clock())
    return JSONResponse({"name": request.path_params["name"], "enrolment_code": code})
