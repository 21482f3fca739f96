"""The staff console's pages (/admin). Rendered on the server from the same domain functions as the
JSON API; what changes anything goes through /api/admin (static/js/admin.js)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import staff, stats, store_staff, support
from ..audit import Actor
from ..context import Context
from ..errors import InvalidField, NotFound
from . import activity, charts
from .admin import AUDIT_PAGE, audit_days, page_number, staff_session
from .auth import client, language
from .pages import render, with_lang


STAFF_PAGE = 50


def _ctx(request: Request) -> Context:
    return request.app.state.ctx


async def _staff_or_login(request: Request, *, admin: bool = False) -> staff.StaffSession | Response:
    """(From outside TOBIRA_ADMIN_NETWORKS no request gets this far: admin.ConsoleGate.)"""
    found = await staff_session(request)
    if found is None:
        return RedirectResponse(with_lang(request, "/admin/login"), status_code=303)
    if admin and found.role != "admin":
        raise HTTPException(404)
    return found


def _page_number(request: Request) -> int:
    return page_number(request) or 0  # a page the pager never links to: the first


def _pager(request: Request, page: int, shown: int, size: int) -> dict:
    """Links to the previous and next page of a list, keeping the other query parameters."""
    def link(number: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k != "page"}
        return f"{request.url.path}?{urlencode({**params, 'page': number})}"
    return {"prev": link(page - 1) if page > 0 else None, "next": link(page + 1) if shown >= size else None}


def _render(request: Request, template: str, session: staff.StaffSession | None, **context) -> Response:
    return render(request, template, console=True, me=session, **context)


async def login_page(request: Request) -> Response:
    if await staff_session(request) is not None:
        return RedirectResponse(with_lang(request, "/admin"), status_code=303)
    return _render(request, "admin/login.html", None)


async def enrol_page(request: Request) -> Response:
    return _render(request, "admin/enrol.html", None)


async def home(request: Request) -> Response:
    session = await _staff_or_login(request)
    if isinstance(session, Response):
        return session
    query = request.query_params.get("q", "")[:254]
    page = _page_number(request)
    ctx = _ctx(request)
    found = await ctx.db.run(support.find, Actor.staff(session.member, client(request).ip), query, now=ctx.clock(),
                             page=page) if query.strip() else None
    return _render(request, "admin/home.html", session, query=query, found=found,
                   pager=_pager(request, page, len(found or []), support.PAGE))


async def customer_page(request: Request) -> Response:
    session = await _staff_or_login(request)
    if isinstance(session, Response):
        return session
    ctx = _ctx(request)
    code = request.path_params["code"]
    try:
        shown = await ctx.db.run(support.show, ctx, Actor.staff(session.member, client(request).ip), code,
                                 now=ctx.clock(), lang=language(request))
    except NotFound:  # a code that is no customer's: this page's 404
        raise HTTPException(404) from None
    lang = language(request)
    for event in shown["events"]:
        event["text"] = activity.text_of(event["kind"], event["detail"], lang)
    return _render(request, "admin/customer.html", session, customer=shown, at_once=support.AT_ONCE,
                   two_person=support.TWO_PERSON)


async def approvals_page(request: Request) -> Response:
    session = await _staff_or_login(request)
    if isinstance(session, Response):
        return session
    ctx = _ctx(request)
    page = _page_number(request)
    pending = await ctx.db.run(support.pending, ctx.clock(), page=page)
    return _render(request, "admin/approvals.html", session, pending=pending,
                   pager=_pager(request, page, len(pending), support.PAGE))


async def audit_page(request: Request) -> Response:
    session = await _staff_or_login(request, admin=True)
    if isinstance(session, Response):
        return session
    q = request.query_params
    filters = {"staff": q.get("staff", "")[:64], "customer": q.get("customer", "")[:20], "action": q.get("action", "")[:30],
               "from": q.get("from", "")[:10], "to": q.get("to", "")[:10]}
    page = _page_number(request)
    try:
        since, until = audit_days(filters["from"], filters["to"])
    except InvalidField:  # a day the browser's date field would not send: no such filter
        since = until = None
        filters["from"] = filters["to"] = ""
    entries = await _ctx(request).db.run(lambda db: store_staff.audit_entries(
        db, staff_name=filters["staff"] or None, customer_code=filters["customer"] or None,
        action=filters["action"] or None, since=since, until=until, limit=AUDIT_PAGE, offset=page * AUDIT_PAGE))
    csv_link = "/api/admin/audit?" + urlencode({**{k: v for k, v in filters.items() if v}, "format": "csv"})
    return _render(request, "admin/audit.html", session, entries=entries, filters=filters, csv_link=csv_link,
                   pager=_pager(request, page, len(entries), AUDIT_PAGE))


async def staff_page(request: Request) -> Response:
    session = await _staff_or_login(request, admin=True)
    if isinstance(session, Response):
        return session
    page = _page_number(request)
    members = await _ctx(request).db.run(staff.listing, limit=STAFF_PAGE, offset=page * STAFF_PAGE)
    return _render(request, "admin/staff.html", session, members=members, roles=staff.ROLES,
                   pager=_pager(request, page, len(members), STAFF_PAGE))


async def adoption_page(request: Request) -> Response:
    session = await _staff_or_login(request, admin=True)
    if isinstance(session, Response):
        return session
    ctx = _ctx(request)
    numbers = await ctx.db.run(stats.adoption, ctx.settings, ctx.clock(), days=90)
    lang = language(request)
    return _render(request, "admin/adoption.html", session, numbers=numbers,
                   logins_chart=charts.stacked_days(numbers["logins_by_day"], lang),
                   share_chart=charts.share(numbers, lang))
