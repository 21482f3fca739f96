"""OpenID Connect provider: the authorization code flow with PKCE, its tokens and userinfo.

The flow is Tobira's own (it decides with Tobira's sessions, passkeys and policy), its JOSE is
joserfc's (oidc_tokens.py). Only what the contract names: the code flow (no implicit, no hybrid),
PKCE with S256 for every client, exact redirect URIs, `iss` in every authorization response
(RFC 9207). Errors are the specs' (`OAuthError`): the web layer sends them back as a redirect to a
registered redirect URI, or as JSON from the token endpoint, never as a redirect anywhere else.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping
from urllib.parse import parse_qs, urlencode

from . import oidc_claims, oidc_clients, policy, sessions, store_oidc
from .config import Settings
from .db import Tx
from .errors import Refusal
from .oidc_claims import Proof
from .oidc_clients import App, hash_secret
from .rows import AuthorizationCodeRow, GrantRow, SessionRow, UserRow

CODE_LIFE = timedelta(seconds=60)
CODE_KEPT = timedelta(days=1)  # a used or expired code is remembered this long: its replay revokes its grant
PKCE = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1 (verifier), §4.2 (S256 challenge: 43)
TEXT_MAX = 255  # state, nonce, login_hint
AFTER = "tobira_after"  # our own parameter on the way back from the login page (see `decide`)


class OAuthError(Refusal):
    """An OAuth / OpenID Connect error response: `error` and a description for the developer."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class NoRedirect(OAuthError):
    """An authorization request whose redirect URI cannot be trusted (unknown client, unregistered
    URI): the answer is an error page on Tobira, never a redirect (RFC 6749 §4.1.2.1)."""


@dataclass(frozen=True)
class AuthorizationRequest:
    app: App
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    acr_values: tuple[str, ...]  # the ones we know (phr, phrh); others are voluntary and ignored
    ui_locale: str | None  # "ja" or "en", the first of ui_locales we speak
    login_hint: str | None
    after: int | None  # AFTER: a login asked by this request must be later than this (Unix time, ms)

    def wants_passkey(self, settings: Settings, now: datetime) -> tuple[str, ...]:
        return acr_wanted(self.app, self.acr_values, settings, now)


def acr_wanted(app: App, asked: tuple[str, ...], settings: Settings, now: datetime) -> tuple[str, ...]:
    """The acr values a login for this app must meet: those asked for (the ones we know), or the
    app's rule (--require-passkey) from the passkey date."""
    if asked:
        return asked
    if app.require_passkey and policy.passkeys_mandatory(settings, now):
        return (oidc_claims.PHR,)
    return ()


def _known_acr(raw: str | None) -> tuple[str, ...]:
    wanted = set((raw or "").split())  # voluntary claims: unknown values are ignored
    return tuple(v for v in oidc_claims.ACR_VALUES if v in wanted)


def single_value(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:  # RFC 6749 §3.1
        raise OAuthError("invalid_request", f"{name} given more than once")
    return values[0] if values else None


def trusted_redirect(db: Tx, params: Mapping[str, list[str]]) -> tuple[App, str, str | None]:
    """The app, its redirect URI and the state to send back, once the URI is known to be the app's
    own; NoRedirect before (nothing may be sent to an unknown URI, RFC 6749 §4.1.2.1)."""
    try:
        client_id, redirect_uri, state = (single_value(params, "client_id"), single_value(params, "redirect_uri"),
                                          single_value(params, "state"))
    except OAuthError as exc:
        raise NoRedirect(exc.error, exc.description) from None
    app = oidc_clients.find(db, client_id) if client_id else None
    if app is None:
        raise NoRedirect("invalid_client", "unknown client_id")
    if redirect_uri is None or redirect_uri not in app.redirect_uris:  # exact match, RFC 9700 §4.1.3
        raise NoRedirect("invalid_request", "redirect_uri is missing or not registered for this client")
    if state is not None and len(state) > TEXT_MAX:
        raise NoRedirect("invalid_request", f"state longer than {TEXT_MAX} characters")
    return app, redirect_uri, state


def _checked(params: Mapping[str, list[str]], app: App, redirect_uri: str, state: str | None) -> AuthorizationRequest:
    if single_value(params, "request") is not None:
        raise OAuthError("request_not_supported", "request objects are not supported")
    if single_value(params, "request_uri") is not None:
        raise OAuthError("request_uri_not_supported", "request_uri is not supported")
    if single_value(params, "response_type") != "code":
        raise OAuthError("unsupported_response_type", "only the code flow (response_type=code)")
    if single_value(params, "response_mode") not in (None, "query"):
        raise OAuthError("invalid_request", "only response_mode=query")
    scope = tuple(dict.fromkeys((single_value(params, "scope") or "").split()))
    if "openid" not in scope:
        raise OAuthError("invalid_scope", "scope must include openid")
    if not set(scope) <= app.scopes:
        raise OAuthError("invalid_scope", f"this client may ask for: {' '.join(sorted(app.scopes))}")
    challenge, method = single_value(params, "code_challenge"), single_value(params, "code_challenge_method")
    if challenge is None or method != "S256" or len(challenge) != 43 or not PKCE.fullmatch(challenge):
        raise OAuthError("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
    nonce, login_hint = single_value(params, "nonce"), single_value(params, "login_hint")
    for name, value in (("nonce", nonce), ("login_hint", login_hint)):
        if value is not None and len(value) > TEXT_MAX:
            raise OAuthError("invalid_request", f"{name} longer than {TEXT_MAX} characters")
    prompt = frozenset((single_value(params, "prompt") or "").split())
    if not prompt <= {"none", "login"} or ("none" in prompt and len(prompt) > 1):
        raise OAuthError("invalid_request", "prompt: none or login (consent and select_account do not apply)")
    max_age = _number(single_value(params, "max_age"), "max_age")
    after = _number(single_value(params, AFTER), AFTER)
    locales = (single_value(params, "ui_locales") or "").split()
    ui_locale = next((tag.split("-")[0].lower() for tag in locales if tag.split("-")[0].lower() in ("ja", "en")), None)
    return AuthorizationRequest(
        app=app, redirect_uri=redirect_uri, scope=scope, state=state, nonce=nonce, code_challenge=challenge,
        prompt=prompt, max_age=max_age, acr_values=_known_acr(single_value(params, "acr_values")),
        ui_locale=ui_locale, login_hint=login_hint.strip().upper() if login_hint else None, after=after)


def _number(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 15:
        raise OAuthError("invalid_request", f"{name} must be a non-negative integer")
    return int(value)


def redirect_with(redirect_uri: str, state: str | None, issuer: str, **params: str | None) -> str:
    """The redirect URI with the response's parameters, state and iss (RFC 9207) added to its query."""
    given = {k: v for k, v in params.items() if v is not None}
    if state is not None:
        given["state"] = state
    given["iss"] = issuer
    return redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(given)


def decide(request: AuthorizationRequest, session: SessionRow | None, user: UserRow | None, *,
           settings: Settings, now: datetime) -> Proof | None:
    """What an authorization request needs, given the browser's session (None: none logged in):
    the proof of the login a code may be issued for, or None: the customer logs in (again) on
    Tobira first, and the same request comes back (the login page itself tells whether only a
    passkey will do: `app_asking`).

    A login the request asked for is one made after it (`after`, set when we sent the customer
    to the login page): if that login still does not meet the request, asking again would loop,
    so the answer is the error instead (`unmet_authentication_requirements`, `login_required`)."""
    silent = "none" in request.prompt
    wanted = request.wants_passkey(settings, now)
    if session is None or user is None:
        if silent:
            raise OAuthError("login_required", "no customer is logged in")
        return None
    proof = oidc_claims.proof_of(session, now)
    came_back = request.after is not None
    if came_back and proof.auth_time.timestamp() * 1000 <= (request.after or 0):
        return None  # the login this request asked for has not happened yet
    if request.login_hint and request.login_hint != user.customer_code:
        if silent or came_back:
            raise OAuthError("login_required", "another customer is logged in")
        return None
    if "login" in request.prompt:
        return None
    if request.max_age is not None and (now - proof.auth_time).total_seconds() > request.max_age and not came_back:
        if silent:
            raise OAuthError("login_required", "the login is older than max_age")
        return None
    if not oidc_claims.satisfies(proof.acr, wanted):
        if silent or came_back:
            raise OAuthError("unmet_authentication_requirements", f"a passkey login ({' or '.join(wanted)}) is required")
        return None
    return proof


def issue_code(db: Tx, request: AuthorizationRequest, session: SessionRow, proof: Proof, *, now: datetime) -> str:
    """A grant for this app, customer and session, and its code (only its hash is kept)."""
    if session.sid is None or session.user_id is None:
        raise ValueError("only a logged-in session gets a grant")
    grant = GrantRow(id=secrets.token_urlsafe(16), client_id=request.app.client_id, user_id=session.user_id,
                     sid=session.sid, scope=" ".join(request.scope), auth_time=proof.auth_time,
                     amr=" ".join(proof.amr), acr=proof.acr, created_at=now, revoked_at=None)
    store_oidc.add_grant(db, grant)
    code = secrets.token_urlsafe(32)
    store_oidc.add_code(db, AuthorizationCodeRow(code_hash=hash_secret(code), grant_id=grant.id,
                                                 redirect_uri=request.redirect_uri,
                                                 code_challenge=request.code_challenge, nonce=request.nonce,
                                                 expires_at=now + CODE_LIFE, used_at=None))
    return code


# --- one authorization request, start to end -------------------------------------------------

@dataclass(frozen=True)
class Authorized:
    """Where the browser goes next: the app (with a code or an error), or Tobira's login page."""

    location: str
    log_in_first: bool = False  # location is the request again, for the login page's `next`
    ui_locale: str | None = None  # the login page's language, from ui_locales


def authorize(db: Tx, params: Mapping[str, list[str]], session_id_hash: str | None, *, settings: Settings,
              now: datetime) -> Authorized:
    """Check the request, look at the browser's session, and answer: a code, an error for the app
    (both as a redirect to its registered URI), or the login first. NoRedirect for a request whose
    redirect URI cannot be trusted (the web layer shows an error page)."""
    app, redirect_uri, state = trusted_redirect(db, params)
    issuer = settings.oidc_issuer
    try:
        request = _checked(params, app, redirect_uri, state)
        found = (sessions.load_with_customer(db, session_id_hash, now=now, settings=settings)
                 if session_id_hash else None)
        session, user = found if found and found[0].state == sessions.ACTIVE else (None, None)
        if user is not None and user.held_at is not None:
            raise OAuthError("access_denied", "the account is on hold")
        proof = decide(request, session, user, settings=settings, now=now)
        if proof is None:
            return Authorized(_come_back(params, now), log_in_first=True, ui_locale=request.ui_locale)
        assert session is not None  # a proof only with a session
        code = issue_code(db, request, session, proof, now=now)
        return Authorized(redirect_with(redirect_uri, state, issuer, code=code))
    except OAuthError as exc:
        return Authorized(redirect_with(redirect_uri, state, issuer, error=exc.error, error_description=exc.description))


def _come_back(params: Mapping[str, list[str]], now: datetime) -> str:
    """This request again, as the login page's `next`: without what the login answers (prompt,
    max_age), with the time from which a login counts (AFTER)."""
    kept = [(k, v) for k, values in params.items() if k not in ("prompt", "max_age", AFTER) for v in values]
    path = "/oauth/authorize?" + urlencode(kept + [(AFTER, str(int(now.timestamp() * 1000)))])
    if len(path) > sessions.NEXT_MAX:
        raise OAuthError("invalid_request", f"the request is too long to come back after the login ({sessions.NEXT_MAX})")
    return path


@dataclass(frozen=True)
class AppAsking:
    """What the login page tells the customer when an app sent them: which app, and whether only
    a passkey login will do for it."""

    name: str
    passkey_required: bool


def app_asking(db: Tx, next_path: str | None, *, settings: Settings, now: datetime) -> AppAsking | None:
    """The app behind a login's `next`, when it is an authorization request of a registered app."""
    if not next_path or not next_path.startswith("/oauth/authorize?"):
        return None
    params = parse_qs(next_path.split("?", 1)[1])
    client_id = (params.get("client_id") or [""])[0]
    app = oidc_clients.find(db, client_id) if client_id else None
    if app is None:
        return None
    asked = _known_acr((params.get("acr_values") or [""])[0])
    return AppAsking(app.name, bool(acr_wanted(app, asked, settings, now)))
