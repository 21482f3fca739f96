"""The staff console's JSON API (/api/admin): staff sign in with passkeys only, on their own cookie;
every customer action carries a reason and lands in the audit trail (support.py, audit.py)."""

from __future__ import annotations

import ipaddress
from datetime import date, datetime, time, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import audit, staff, staff_auth, store_staff, support, verify
from ..audit import Actor
from ..config import JST
from ..context import Context
from ..errors import InvalidField, NotAuthenticated, StaffRefusal
from .api import read_body, read_json
from . import pages
from .auth import client, language
from .responses import error_response
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


def _console_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in ("/admin", "/api/admin"))


class ConsoleGate:
    """In front of the router, so that from outside TOBIRA_ADMIN_NETWORKS every path under /admin and
    /api/admin answers 404, as if the console were not there (no 405 for a wrong method, no redirect
    for a trailing slash). Anywhere, a NUL in such a path or query is refused before it reaches a
    handler (PostgreSQL cannot store it): 404 too."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not _console_path(scope["path"]):
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        api = scope["path"].startswith("/api/")
        # A NUL names nothing that exists: the same 404.
        nul = "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"").lower()
        if from_admin_network(request) and not nul:
            return await self.app(scope, receive, send)
        answer = error_response("not_found", language(request)) if api else await pages.not_found_page(request)
        await answer(scope, receive, send)


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


def page_number(request: Request) -> int | None:
    """`?page=`, a number from 0 (0 when absent); None when it is anything else."""
    raw = request.query_params.get("page", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:  # "²" is a digit to str.isdigit, not to int
        return None
    return int(raw)


def _page(request: Request) -> int:
    page = page_number(request)
    if page is None:
        raise InvalidField(reason="page is a number from 0", field="page")
    return page


def _begun(request: Request, begun: staff_auth.Begun) -> Response:
    """A ceremony's options, and the cookie that binds it to this browser."""
    response = JSONResponse(begun.options)
    request.app.state.cookies.set_staff_ceremony(response, begun.browser)
    return response


def _signed_in(request: Request, done: staff_auth.SignedIn, status: int) -> Response:
    response = JSONResponse({"name": done.member.name, "role": done.member.role}, status_code=status)
    request.app.state.cookies.set_staff_session(response, done.session_id)
    return response


# --- enrolment, sign-in, session -------------------------------------------------------------------


async def admin_enrol_options(request: Request) -> Response:
    body = await read_body(request, StaffEnrolment)
    cookies = request.app.state.cookies
    return _begun(request, await staff_auth.begin_enrolment(_ctx(request), name=body.name, code=body.enrolment_code,
                                                            browser=cookies.staff_ceremony(request)))


async def admin_enrol_verify(request: Request) -> Response:
    raw = await read_json(request, max_bytes=verify.MAX_REGISTRATION_JSON)
    done = await staff_auth.complete_enrolment(_ctx(request), credential=raw,
                                               browser=request.app.state.cookies.staff_ceremony(request),
                                               client=client(request))
    return _signed_in(request, done, 201)


async def admin_login_options(request: Request) -> Response:
    await read_body(request, NoBody)
    cookies = request.app.state.cookies
    return _begun(request, await staff_auth.begin_login(_ctx(request), browser=cookies.staff_ceremony(request),
                                                        client=client(request)))


async def admin_login_verify(request: Request) -> Response:
    raw = await read_json(request, max_bytes=verify.MAX_AUTHENTICATION_JSON)
    done = await staff_auth.complete_login(_ctx(request), credential=raw,
                                           browser=request.app.state.cookies.staff_ceremony(request),
                                           client=client(request))
    return _signed_in(request, done, 200)


async def admin_logout(request: Request) -> Response:
    await read_body(request, NoBody)
    found = await staff_session(request)
    if found is not None:
        await _ctx(request).db.run(store_staff.end_session, found.id_hash)
    response = Response(status_code=204)
    request.app.state.cookies.clear_staff_session(response)
    return response


async def admin_session(request: Request) -> Response:
    found = await _require_staff(request)
    return JSONResponse({"name": found.name, "role": found.role})


# --- customers ---------------------------------------------------------------------------------------


async def admin_customers(request: Request) -> Response:
    session = await _require_staff(request)
    query = request.query_params.get("q", "")
    if len(query) > 254:
        raise InvalidField(reason="q is at most 254 characters", field="q")
    ctx = _ctx(request)
    found = await ctx.db.run(support.find, _actor(request, session), query, now=ctx.clock(),
                             page=_page(request)) if query.strip() else []
    return JSONResponse({"customers": found})


async def admin_customer(request: Request) -> Response:
    session = await _require_staff(request)
    ctx = _ctx(request)
    shown = await ctx.db.run(support.show, ctx, _actor(request, session), request.path_params["code"],
                             now=ctx.clock(), lang=language(request))
    return JSONResponse(shown)


async def admin_customer_action(request: Request) -> Response:
    raw = await read_json(request)
    session = await _require_staff(request)
    body = parse(StaffAction, raw)
    ctx = _ctx(request)
    outcome = await ctx.db.run(support.act, ctx, _actor(request, session), request.path_params["code"], body.action,
                               support.clean_reason(body.reason), email=body.email, now=ctx.clock())
    ctx.outbox.wake()
    if outcome.request_id is None:
        return JSONResponse({"status": outcome.status})
    return JSONResponse({"status": outcome.status, "request_id": outcome.request_id}, status_code=202)


# --- approvals, audit ------------------------------------------------------------------------------


async def admin_approvals(request: Request) -> Response:
    await _require_staff(request)
    ctx = _ctx(request)
    return JSONResponse({"requests": await ctx.db.run(support.pending, ctx.clock(), page=_page(request))})


async def admin_approve(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_staff(request)
    ctx = _ctx(request)
    outcome = await ctx.db.run(support.approve, ctx, _actor(request, session), request.path_params["request_id"],
                               now=ctx.clock())
    ctx.outbox.wake()
    return JSONResponse({"status": outcome.status})


AUDIT_PAGE = 100


def audit_days(first: str | None, last: str | None) -> tuple[datetime | None, datetime | None]:
    """`from` and `to`: JST days (YYYY-MM-DD, both included), as the instants the filter uses;
    422 invalid_request for anything else."""
    def day(text: str | None, field: str) -> date | None:
        if not text:
            return None
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
        except ValueError:
            pass
        raise InvalidField(reason=f"{field} is a day, YYYY-MM-DD", field=field)

    start, end = day(first, "from"), day(last, "to")
    since = datetime.combine(start, time.min, tzinfo=JST) if start else None
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=JST) if end else None
    return since, until


async def admin_audit(request: Request) -> Response:
    await _require_staff(request, admin=True)
    q = request.query_params
    csv_wanted = q.get("format") == "csv"
    offset = 0 if csv_wanted else _page(request) * AUDIT_PAGE
    since, until = audit_days(q.get("from"), q.get("to"))
    entries = await _ctx(request).db.run(lambda db: store_staff.audit_entries(
        db, staff_name=q.get("staff") or None, customer_code=q.get("customer") or None,
        action=q.get("action") or None, since=since, until=until, limit=None if csv_wanted else AUDIT_PAGE,
        offset=offset))
    if csv_wanted:
        return Response(audit.as_csv(entries), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="tobira-audit.csv"'})
    return JSONResponse({"entries": [audit.as_json(e) for e in entries]})


# --- staff management (admins) ---------------------------------------------------------------------


def _staff_change(change):
    """staff.add / disable / reset_passkeys (each audits itself), a mistake in the name being 422."""
    def run(db, *args, **kwargs):
        try:
            return change(db, *args, **kwargs)
        except staff.StaffError as exc:
            raise InvalidField(reason=str(exc), field="name") from None
    return run


async def admin_staff_add(request: Request) -> Response:
    raw = await read_json(request)
    session = await _require_staff(request, admin=True)
    body = parse(StaffMember, raw)
    ctx = _ctx(request)
    _, code = await ctx.db.run(_staff_change(staff.add), body.name, body.role, now=ctx.clock(),
                               actor=_actor(request, session))
    return JSONResponse({"name": body.name, "role": body.role, "enrolment_code": code}, status_code=201)


async def admin_staff_disable(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_staff(request, admin=True)
    ctx = _ctx(request)
    await ctx.db.run(_staff_change(staff.disable), request.path_params["name"], now=ctx.clock(),
                     actor=_actor(request, session))
    return JSONResponse({"status": "done"})


async def admin_staff_reset_passkeys(request: Request) -> Response:
    await read_body(request, NoBody)
    session = await _require_staff(request, admin=True)
    ctx = _ctx(request)
    code = await ctx.db.run(_staff_change(staff.reset_passkeys), request.path_params["name"], now=ctx.clock(),
                            actor=_actor(request, session))
    return JSONResponse({"name": request.path_params["name"], "enrolment_code": code})
