"""create_app(settings) -> the Starlette app: routes, middleware, lifespan. Nothing runs at import."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from datetime import datetime, timedelta
from typing import Callable

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount, Route

from . import (db as dbmod, mailworker, oidc, oidc_grants, oidc_keys, sessions, speedups, staff, store, store_oidc,
               store_outbox, store_staff, store_windows)
from .codes import CodeHasher
from .config import Settings, load_settings, utcnow
from .context import Context
from .errors import ServiceError
from .mail import Mailer, OutboxWorker, make_mailer
from .oidc_keys import KeyRing
from .oidc_logout import LogoutSender
from .passwords import Passwords
from .ratelimit import make_throttle
from .web import admin, admin_pages, api, oauth, pages, wellknown
from .web.auth import Clients, Cookies, language
from .web.middleware import Gate
from .web.responses import error_response

log = logging.getLogger("tobira")


class _SessionId(Convertor):
    """A session's public id (sessions.SID_LENGTH characters of base64url): so that
    /api/sessions/end-others is never read as a session's id."""

    regex = f"[A-Za-z0-9_-]{{{sessions.SID_LENGTH}}}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("sid", _SessionId())


def routes() -> list:
    # Starlette tries routes in order: the passkey login and the session check, which every login
    # and every page make, come first.
    return [
        Route("/api/login/passkey/options", api.passkey_login_options, methods=["POST"]),
        Route("/api/login/passkey/verify", api.passkey_login_verify, methods=["POST"]),
        Route("/api/session", api.session_info, methods=["GET"]),
        Route("/", pages.home),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/login", pages.login_page),
        Route("/login/code", pages.code_page),
        Route("/account", pages.account_page),
        Route("/account/passkeys", pages.passkeys_page),
        Route("/account/activity", pages.activity_page),
        Route("/account/devices", pages.devices_page),
        Route("/account/passkey-required", pages.restricted_page),
        Route("/api/login/password", api.login_password, methods=["POST"]),
        Route("/api/login/code", api.login_code, methods=["POST"]),
        Route("/api/login/code/resend", api.login_code_resend, methods=["POST"]),
        Route("/api/logout", api.logout, methods=["POST"]),
        Route("/api/step-up/code/send", api.step_up_code_send, methods=["POST"]),
        Route("/api/step-up/code", api.step_up_code, methods=["POST"]),
        Route("/api/step-up/passkey/options", api.step_up_passkey_options, methods=["POST"]),
        Route("/api/step-up/passkey/verify", api.step_up_passkey_verify, methods=["POST"]),
        Route("/api/passkeys", api.passkey_list, methods=["GET"]),
        Route("/api/passkeys/register/options", api.passkey_register_options, methods=["POST"]),
        Route("/api/passkeys/register/verify", api.passkey_register_verify, methods=["POST"]),
        Route("/api/passkeys/{passkey_id}", api.passkey_rename, methods=["PATCH"]),
        Route("/api/passkeys/{passkey_id}", api.passkey_delete, methods=["DELETE"]),
        Route("/api/sessions", api.session_list, methods=["GET"]),
        Route("/api/sessions/end-others", api.sessions_end_others, methods=["POST"]),
        Route("/api/sessions/{session_id:sid}", api.session_end, methods=["DELETE"]),
        Route("/api/trusted-devices/{device_id}", api.trusted_device_forget, methods=["DELETE"]),
        Route("/api/authorize", api.authorize, methods=["POST"]),
        Route("/api/account/email", api.change_email, methods=["POST"]),
        Route("/api/account/unlock-password", api.unlock_password, methods=["POST"]),
        Route("/auth/check", api.auth_check, methods=["GET"]),
        Route("/api/admin/enrol/options", admin.admin_enrol_options, methods=["POST"]),
        Route("/api/admin/enrol/verify", admin.admin_enrol_verify, methods=["POST"]),
        Route("/api/admin/login/options", admin.admin_login_options, methods=["POST"]),
        Route("/api/admin/login/verify", admin.admin_login_verify, methods=["POST"]),
        Route("/api/admin/logout", admin.admin_logout, methods=["POST"]),
        Route("/api/admin/session", admin.admin_session, methods=["GET"]),
        Route("/api/admin/customers", admin.admin_customers, methods=["GET"]),
        Route("/api/admin/customers/{code}", admin.admin_customer, methods=["GET"]),
        Route("/api/admin/customers/{code}/actions", admin.admin_customer_action, methods=["POST"]),
        Route("/api/admin/approvals", admin.admin_approvals, methods=["GET"]),
        Route("/api/admin/approvals/{request_id}", admin.admin_approve, methods=["POST"]),
        Route("/api/admin/audit", admin.admin_audit, methods=["GET"]),
        Route("/api/admin/staff", admin.admin_staff_add, methods=["POST"]),
        Route("/api/admin/staff/{name}/disable", admin.admin_staff_disable, methods=["POST"]),
        Route("/api/admin/staff/{name}/reset-passkeys", admin.admin_staff_reset_passkeys, methods=["POST"]),
        Route("/admin", admin_pages.home),
        Route("/admin/login", admin_pages.login_page),
        Route("/admin/enrol", admin_pages.enrol_page),
        Route("/admin/customers/{code}", admin_pages.customer_page),
        Route("/admin/approvals", admin_pages.approvals_page),
        Route("/admin/audit", admin_pages.audit_page),
        Route("/admin/staff", admin_pages.staff_page),
        Route("/admin/adoption", admin_pages.adoption_page),
        Route("/.well-known/openid-configuration", oauth.discovery, methods=["GET"]),
        Route("/.well-known/webauthn", wellknown.webauthn, methods=["GET"]),
        Route("/.well-known/assetlinks.json", wellknown.assetlinks, methods=["GET"]),
        Route("/.well-known/apple-app-site-association", wellknown.apple_app_site_association, methods=["GET"]),
        Route("/oauth/jwks", oauth.jwks, methods=["GET"]),
        Route("/oauth/authorize", oauth.authorization, methods=["GET"]),
        Route("/oauth/token", oauth.token, methods=["POST"]),
        Route("/oauth/userinfo", oauth.userinfo, methods=["GET", "POST"]),
        Route("/oauth/introspect", oauth.introspect, methods=["POST"]),
        Route("/oauth/revoke", oauth.revoke, methods=["POST"]),
        Route("/oauth/logout", oauth.end_session, methods=["GET", "POST"]),
        Mount("/static", app=pages.VersionedStatic(directory=str(pages.STATIC)), name="static"),
    ]


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/auth/"))


# Starlette types every handler as taking Exception: it calls each only with the class it is registered for.
async def _service_error(request: Request, exc: Exception):
    assert isinstance(exc, ServiceError)  # registered for ServiceError
    return api.service_error(request, exc)


async def _http_error(request: Request, exc: Exception):
    assert isinstance(exc, HTTPException)  # registered for HTTPException
    if exc.status_code == 404 and not _is_api(request):
        return await pages.not_found_page(request)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    response = error_response(code, language(request), status=exc.status_code)
    if exc.status_code == 405:
        # Allow must list every method of the path (RFC 9110 §15.5.6), and one path may have a
        # route per method (PATCH and DELETE of a passkey): Starlette names only the first route's.
        path = request.url.path
        allowed = {m for r in request.app.routes if isinstance(r, Route) and r.methods and r.path_regex.match(path)
                   for m in r.methods}
        response.headers["Allow"] = ", ".join(sorted(allowed))
    elif exc.headers:
        response.headers.update(exc.headers)
    return response


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow, mailer: Mailer | None = None,
               passwords: Passwords | None = None, migrate: bool = True, deliver_mail: bool = True) -> Starlette:
    """deliver_mail: run the outbox worker in this process (tests, embedding); `tobira serve`
    runs it as a process of its own instead (server/mailworker.py) and passes False."""
    speedups.install()
    engine = dbmod.make_engine(settings.database_url)
    dbmod.check_connection(engine)
    if migrate:
        dbmod.upgrade(engine)
    database = dbmod.Database(engine)
    mailer = mailer or make_mailer(settings)
    keys = KeyRing(database, settings.secret_key, clock)
    ctx = Context(settings=settings, db=database, passwords=passwords or Passwords(), mailer=mailer,
                  outbox=OutboxWorker(database, mailer, clock), codes=CodeHasher.from_secret(settings.secret_key),
                  throttle=make_throttle(settings, database, clock),
                  keys=keys, logouts=LogoutSender(database, keys, settings.oidc_issuer, clock), clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_sweep(ctx, stop)), asyncio.create_task(ctx.logouts.run())]
        if deliver_mail:
            tasks.append(asyncio.create_task(ctx.outbox.run()))
        # What exists now (modules, metadata, templates) lives as long as the process: keep it out
        # of the collector's passes, which otherwise walk all of it again and again under load.
        gc.freeze()
        try:
            yield
        finally:
            ctx.outbox.stop()
            ctx.logouts.stop()
            stop.set()
            _, stuck = await asyncio.wait(tasks, timeout=10)
            for task in stuck:  # never let a stuck background task hold up shutdown
                task.cancel()
            if deliver_mail:
                await ctx.outbox.last_pass(5)
            if passwords is None:
                ctx.passwords.close()
            ctx.db.close()
            engine.dispose()

    app = Starlette(
        routes=routes(),
        middleware=[Middleware(Gate, origins=settings.page_origins, limit=settings.max_body_bytes,
                               hsts=settings.secure_cookies), Middleware(admin.ConsoleGate)],
        exception_handlers={ServiceError: _service_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.cookies = Cookies(settings)
    app.state.clients = Clients(settings)
    app.state.templates = pages.make_templates()
    return app


SENT_MAIL_KEPT = timedelta(days=1)  # for an operator looking into "did it go out?"


async def _sweep(ctx: Context, stop: asyncio.Event, every: float = 600) -> None:
    """Delete sessions past their limits (staff sessions too), spent rate-limit windows, expired ceremonies, mail sent
    a day ago, authorization codes a day past their expiry and keys no longer published, so those
    tables stay small."""
    s = ctx.settings
    while not stop.is_set():
        try:
            async with asyncio.timeout(every):
                await stop.wait()
            return
        except TimeoutError:
            pass
        try:
            now = ctx.clock()
            await ctx.db.run(store.delete_stale_sessions, idle_before=now - s.session_idle,
                             created_before=now - s.session_absolute)
            await ctx.db.run(store_windows.delete_expired_windows, now)
            await ctx.db.run(store_staff.delete_expired, now)
            await ctx.db.run(store_staff.delete_stale_sessions, idle_before=now - staff.SESSION_IDLE,
                             started_before=now - staff.SESSION_MAX)
            await ctx.db.run(store.delete_expired_ceremonies, now)
            await ctx.db.run(store_outbox.delete_sent_mail, now - SENT_MAIL_KEPT)
            await ctx.db.run(store_oidc.delete_expired_codes, expired_before=now - oidc.CODE_KEPT)
            await ctx.db.run(store_oidc.delete_expired_refresh_tokens, expired_before=now - oidc.CODE_KEPT)
            await ctx.db.run(store_oidc.delete_ended_grants, ended_before=now - oidc_grants.REFRESH_LIFE)
            await ctx.db.run(store_oidc.delete_retired_keys,
                             retired_before=now - oidc_keys.PUBLISHED_AFTER_RETIREMENT)
        except Exception:
            log.exception("session sweep failed")


def app_from_env() -> Starlette:
    """The uvicorn factory for `tobira serve --workers N` (the schema was upgraded before the fork)."""
    from . import logs

    logs.configure()
    return create_app(load_settings(os.environ), migrate=False,
                      deliver_mail=os.environ.get(mailworker.SEPARATE) != "1")
