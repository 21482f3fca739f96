"""The session and trusted-device cookies, who the client is, and the current session."""

from __future__ import annotations

import ipaddress

from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import Response

from .. import sessions
from ..config import Settings
from ..context import Client, Context
from ..i18n import choose_language
from ..models import Session

DEVICE_MAX_CHARS = 100


class Cookies:
    """Cookie names and attributes: `__Host-` + Secure on https (no Domain, Path=/), Lax always."""

    def __init__(self, settings: Settings) -> None:
        self.secure = settings.secure_cookies
        prefix = "__Host-" if self.secure else ""
        self.session_name = prefix + "tobira_session"
        self.device_name = prefix + "tobira_device"
        self.session_max_age = int(settings.session_absolute.total_seconds())
        self.device_max_age = settings.trusted_device_days * 86400
        self._signer = Signer(settings.secret_key, salt="tobira.session")

    def session_hash(self, request: Request) -> str | None:
        """The stored hash of this browser's session id, if its cookie carries a valid signature."""
        value = request.cookies.get(self.session_name)
        if not value or len(value) > 200:
            return None
        try:
            raw = self._signer.unsign(value).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        return sessions.hash_id(raw)

    def device_token(self, request: Request) -> str | None:
        value = request.cookies.get(self.device_name)
        return value if value and len(value) <= DEVICE_MAX_CHARS else None

    def set_session(self, response: Response, raw_id: str) -> None:
        response.set_cookie(self.session_name, self._signer.sign(raw_id).decode(), max_age=self.session_max_age,
                            path="/", secure=self.secure, httponly=True, samesite="lax")

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(self.session_name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def set_device(self, response: Response, token: str) -> None:
        response.set_cookie(self.device_name, token, max_age=self.device_max_age, path="/", secure=self.secure,
                            httponly=True, samesite="lax")


def language(request: Request) -> str:
    return choose_language(request.query_params.get("lang"), request.headers.get("accept-language"))


def client_ip(request: Request, settings: Settings) -> str | None:
    """The peer's address, or the client named by X-Forwarded-For when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    if not peer or not settings.trusted_proxies:
        return peer

    def trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in settings.trusted_proxies)

    if not trusted(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    # Walk from the nearest hop outward; the first address no trusted proxy vouches for is the client.
    for hop in reversed(hops):
        if not trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer


def client(request: Request) -> Client:
    ctx: Context = request.app.state.ctx
    ua = request.headers.get("user-agent")
    return Client(ip=client_ip(request, ctx.settings), user_agent=ua[:300] if ua else None, lang=language(request))


async def current_session(request: Request) -> Session | None:
    """This browser's live session (pending or active), loaded once per request."""
    if "tobira_session" in request.scope.setdefault("state", {}):
        return request.scope["state"]["tobira_session"]
    ctx: Context = request.app.state.ctx
    id_hash = request.app.state.cookies.session_hash(request)
    row = None
    if id_hash:
        row = await ctx.db.run(sessions.load, id_hash, now=ctx.clock(), settings=ctx.settings)
    request.scope["state"]["tobira_session"] = row
    return row


async def logged_in(request: Request) -> Session | None:
    row = await current_session(request)
    return row if row is not None and row.state == sessions.ACTIVE else None
