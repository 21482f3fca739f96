"""The session and trusted-device cookies, who the client is, and the current session."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re

from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import Response

from .. import sessions, staff
from ..config import Settings
from ..context import Client, Context
from ..i18n import choose_language
from ..rows import SessionRow

DEVICE_MAX_CHARS = 100
# Control characters in a User-Agent are nobody's browser name, and PostgreSQL cannot store NUL.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


class _FastSigner(Signer):
    """itsdangerous's Signer with the same signatures for less CPU (every request signs or checks one).

    It derives the key from the secret again for every signature; the result never changes, so
    it is kept. And `hashlib.sha1` itself (itsdangerous's default is a wrapper around it) lets
    `hmac` use OpenSSL's HMAC instead of its pure-Python fallback."""

    @functools.cached_property
    def _derived(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        return self._derived if secret_key is None else super().derive_key(secret_key)


class Cookies:
    """Cookie names and attributes: `__Host-` + Secure on https (no Domain, Path=/), Lax always."""

    def __init__(self, settings: Settings) -> None:
        self.secure = settings.secure_cookies
        prefix = "__Host-" if self.secure else ""
        self.session_name = prefix + "tobira_session"
        self.device_name = prefix + "tobira_device"
        self.session_max_age = int(settings.session_absolute.total_seconds())
        self.device_max_age = settings.trusted_device_days * 86400
        self._signer = _FastSigner(settings.secret_key, salt="tobira.session", digest_method=hashlib.sha1)
        # The session cookie's attributes, as Starlette's set_cookie writes them, made once: its
        # http.cookies machinery costs more than signing the value (every login sets one).
        self._session_attributes = (f"; HttpOnly; Max-Age={self.session_max_age}; Path=/; SameSite=lax"
                                    + ("; Secure" if self.secure else "")).encode("latin-1")

    # --- the staff console's own cookies: a customer's session is no staff session, nor the reverse.

    @functools.cached_property
    def _staff_signer(self) -> _FastSigner:
        return _FastSigner(self._signer.secret_keys[-1], salt="tobira.staff", digest_method=hashlib.sha1)

    @property
    def staff_name(self) -> str:
        return ("__Host-" if self.secure else "") + "tobira_staff"

    @property
    def staff_ceremony_name(self) -> str:
        return ("__Host-" if self.secure else "") + "tobira_staff_ceremony"

    def staff_session_hash(self, request: Request) -> str | None:
        value = request.cookies.get(self.staff_name)
        if not value or len(value) > 200:
            return None
        try:
            return staff.hash_id(self._staff_signer.unsign(value).decode())
        except (BadSignature, UnicodeDecodeError):
            return None

    def set_staff_session(self, response: Response, raw_id: str) -> None:
        response.set_cookie(self.staff_name, self._staff_signer.sign(raw_id).decode(),
                            max_age=int(staff.SESSION_MAX.total_seconds()), path="/", secure=self.secure,
                            httponly=True, samesite="strict")

    def clear_staff_session(self, response: Response) -> None:
        response.delete_cookie(self.staff_name, path="/", secure=self.secure, httponly=True, samesite="strict")

    def staff_ceremony(self, request: Request) -> str | None:
        value = request.cookies.get(self.staff_ceremony_name)
        return value if value and len(value) <= 64 else None

    def set_staff_ceremony(self, response: Response, value: str) -> None:
        response.set_cookie(self.staff_ceremony_name, value, max_age=300, path="/", secure=self.secure,
                            httponly=True, samesite="strict")

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
        # The value (token_urlsafe, ".", base64url) needs no quoting.
        value = self._signer.sign(raw_id)
        response.raw_headers.append((b"set-cookie", self.session_name.encode() + b"=" + value + self._session_attributes))

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(self.session_name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def set_device(self, response: Response, token: str) -> None:
        response.set_cookie(self.device_name, token, max_age=self.device_max_age, path="/", secure=self.secure,
                            httponly=True, samesite="lax")


def language(request: Request) -> str:
    # Most requests have no query string: not parsing one saves most of the cost.
    query = request.query_params.get("lang") if request.scope.get("query_string") else None
    return _language(query, request.headers.get("accept-language"))


# Browsers send the same few Accept-Language values again and again (bounded: junk cannot grow it).
_language = functools.lru_cache(maxsize=1024)(choose_language)


class Clients:
    """Works out who is asking: the client's address (through trusted proxies), browser and language.

    Parsing addresses is slow next to a request's other work, and the same few proxies and
    clients come again and again: whether an address is a trusted proxy is remembered (bounded,
    so varied junk cannot grow it)."""

    def __init__(self, settings: Settings) -> None:
        self.networks = settings.trusted_proxies
        self.trusted = functools.lru_cache(maxsize=4096)(self._trusted)

    def _trusted(self, addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def ip(self, request: Request) -> str | None:
        """The peer's address, or the client named by X-Forwarded-For when the peer is a trusted proxy."""
        peer = request.client.host if request.client else None
        if not peer or not self.networks or not self.trusted(peer):
            return peer
        # Every X-Forwarded-For line, in order, as one list (RFC 9110 §5.3): a proxy may append a
        # line of its own rather than extend the client's, and the first line is the client's to write.
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        # Walk from the nearest hop outward; the first address no trusted proxy vouches for is the client.
        for hop in reversed(hops):
            if not self.trusted(hop):
                return _canonical(hop) or peer
        return hops[0] if hops else peer

    def of(self, request: Request) -> Client:
        ua = request.headers.get("user-agent")
        if ua and _CONTROLS.search(ua):
            ua = _CONTROLS.sub("", ua)
        return Client(ip=self.ip(request), user_agent=ua[:300] if ua else None, lang=language(request))


@functools.lru_cache(maxsize=4096)
def _canonical(addr: str) -> str | None:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None


def client(request: Request) -> Client:
    """Who is asking (worked out once per request)."""
    state = request.scope.setdefault("state", {})
    found = state.get("tobira_client")
    if found is None:
        found = state["tobira_client"] = request.app.state.clients.of(request)
    return found


async def current_session(request: Request) -> SessionRow | None:
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


async def logged_in(request: Request) -> SessionRow | None:
    row = await current_session(request)
    return row if row is not None and row.state == sessions.ACTIVE else None
