"""HTML pages. Templates only loop and branch; the wording lives in texts.py."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fido2.utils import websafe_encode

from .. import accounts, oidc, passkeys, policy, sessions, signed_in
from ..messages import mask_email
from ..config import JST
from ..context import Context
from . import activity
from .auth import current_session, language, logged_in
from .texts import TEXTS, translate

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"


class VersionedStatic(StaticFiles):
    """Static files named with a content hash in `?v=`, so browsers may keep them for a year."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    versions: dict[str, str] = {}

    def static(path: str) -> str:
        if path not in versions:
            versions[path] = hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:12]
        return f"/static/{path}?v={versions[path]}"

    templates.env.globals["static"] = static
    templates.env.filters["b64url"] = websafe_encode
    templates.env.filters["jst"] = _jst
    templates.env.filters["iso_jst"] = lambda text: _jst(datetime.fromisoformat(text)) if text else "-"
    return templates


def _jst(when: datetime) -> str:
    return when.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")


def with_lang(request: Request, path: str, **params) -> str:
    if request.query_params.get("lang") == "en":
        params["lang"] = "en"
    return f"{path}?{urlencode(params)}" if params else path


def same_origin_path(path: str) -> str:
    """A request's path (decoded, as in the ASGI scope) as a link that stays on this site
    (security.md §38). Percent-encoded, so a backslash or a tab cannot be read as a slash
    (browsers drop tabs and newlines and read `/\\` as `//`); a path that would still start with
    `//` (a protocol-relative URL: another host) is `/`."""
    encoded = quote(path, safe="/:@!$&'()*+,;=-._~", errors="replace")
    return encoded if encoded.startswith("/") and not encoded.startswith("//") else "/"


def render(request: Request, template: str, status_code: int = 200, **context) -> Response:
    lang = language(request)
    js_texts = {k: translate(k, lang) for k in TEXTS if k.startswith("js.")}
    other_lang = "ja" if lang == "en" else "en"
    return request.app.state.templates.TemplateResponse(request, template, {
        "lang": lang,
        "t": lambda key, **kw: translate(key, lang, **kw),
        "js_texts": js_texts,
        "lang_switch_url": f"{same_origin_path(request.scope['path'])}?"
                           f"{urlencode({**request.query_params, 'lang': other_lang})}",
        **context,
    }, status_code=status_code)


def _ctx(request: Request) -> Context:
    return request.app.state.ctx


async def home(request: Request) -> Response:
    target = "/account" if await logged_in(request) else "/login"
    return RedirectResponse(with_lang(request, target), status_code=303)


async def login_page(request: Request) -> Response:
    next_path = request.query_params.get("next")
    if await logged_in(request) and not next_path:
        return RedirectResponse(with_lang(request, "/account"), status_code=303)
    ctx = _ctx(request)
    asking = await ctx.db.run(oidc.app_asking, next_path, settings=ctx.settings, now=ctx.clock())
    return render(request, "login.html", next_path=next_path or "", asking=asking)


async def code_page(request: Request) -> Response:
    row = await current_session(request)
    if row is None or row.state != sessions.PENDING:
        return RedirectResponse(with_lang(request, "/login"), status_code=303)
    user = await _ctx(request).db.run(accounts.customer, row.user_id)
    s = _ctx(request).settings
    return render(request, "code.html", masked_email=mask_email(user.email or ""),
                  minutes=max(1, s.code_ttl // 60), days=s.trusted_device_days, can_remember=s.trusted_device_days > 0)


def _date_text(when, lang: str) -> str:
    """The passkey date as the broker announces it; midnight is just the day."""
    local = when.astimezone(JST)
    midnight = (local.hour, local.minute) == (0, 0)
    if lang == "en":
        return local.strftime("%B %-d, %Y" if midnight else "%B %-d, %Y %H:%M (Japan time)")
    return f"{local.year}年{local.month}月{local.day}日" + ("" if midnight else f" {local:%H:%M}")


async def render_customer(request: Request, template: str, row, **context) -> Response:
    """A page of a logged-in customer: the passkey banner and the step-up dialog come with it."""
    ctx = _ctx(request)
    user, count = await ctx.db.run(accounts.customer_with_passkey_count, row.user_id)
    date = ctx.settings.passkey_mandatory_from
    banner = None
    if date is not None:
        mandatory = policy.passkeys_mandatory(ctx.settings, ctx.clock())
        if not mandatory and count == 0:
            banner = "before"
        elif mandatory and row.auth_method != "passkey":
            banner = "after"
    now = ctx.clock()
    lock = policy.lock_state(user)
    refusal = policy.important_operations_reason(row, ctx.settings, now)
    return render(request, template, user=user, session=row, passkey_count=count, customer_page=True,
                  banner=banner, has_passkey=count > 0,
                  mandatory_date=_date_text(date, language(request)) if date else None,
                  password_locked=lock == "password",
                  # Where a code step-up would be refused (the lock closes the code path) or would not
                  # count (from the passkey date, for a passkey holder), the dialog offers the passkey only.
                  passkey_step_up_only=count > 0 and (lock != "no" or policy.passkeys_mandatory(ctx.settings, now)),
                  hold_until=refusal.hold_until if refusal and refusal.reason == "passkey_on_hold" else None,
                  **context)


async def account_page(request: Request) -> Response:
    row = await logged_in(request)
    if row is None:
        return RedirectResponse(with_lang(request, "/login", next="/account"), status_code=303)
    # An active session's: sessions.create sets it for state=ACTIVE, sessions.rotate carries it over.
    assert row.authenticated_at is not None
    return await render_customer(request, "account.html", row, logged_in_at=row.authenticated_at.astimezone(JST))


async def restricted_page(request: Request) -> Response:
    """Where a password login lands once passkeys are mandatory: what changed, and the way out."""
    row = await logged_in(request)
    if row is None:
        return RedirectResponse(with_lang(request, "/login"), status_code=303)
    return await render_customer(request, "restricted.html", row)


async def passkeys_page(request: Request) -> Response:
    row = await logged_in(request)
    if row is None:
        return RedirectResponse(with_lang(request, "/login", next="/account/passkeys"), status_code=303)
    ctx = _ctx(request)
    views = await ctx.db.run(passkeys.list_views, row.user_id, ctx.clock())
    limit = ctx.settings.max_passkeys
    return await render_customer(request, "passkeys.html", row, passkeys=views, limit=limit,
                                 at_limit=passkeys.limit_refusal(len(views), ctx.settings) is not None,
                                 rp_id=ctx.settings.rp_id)


async def activity_page(request: Request) -> Response:
    row = await logged_in(request)
    if row is None:
        return RedirectResponse(with_lang(request, "/login", next="/account/activity"), status_code=303)
    events = await _ctx(request).db.run(accounts.recent_events, row.user_id)
    lang = language(request)
    return await render_customer(request, "activity.html", row, rows=[activity.describe(e, lang) for e in events])


async def devices_page(request: Request) -> Response:
    row = await logged_in(request)
    if row is None:
        return RedirectResponse(with_lang(request, "/login", next="/account/devices"), status_code=303)
    ctx = _ctx(request)
    found = await ctx.db.run(signed_in.overview, row, settings=ctx.settings, now=ctx.clock(), lang=language(request))
    return await render_customer(request, "devices.html", row, signed_in=found)


async def not_found_page(request: Request) -> Response:
    return render(request, "not_found.html", status_code=404)
