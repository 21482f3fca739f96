"""The OpenID Connect endpoints (contract: "OpenID Connect"): translation only, oidc*.py decides.

Errors here speak OAuth, not the contract's JSON API: `{"error", "error_description"}` from the
token and userinfo endpoints (RFC 6749 §5.2, RFC 6750 §3), a redirect to the app's registered URI
from the authorization endpoint, or an error page when that URI cannot be trusted.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from .. import oidc, oidc_tokens, store
from ..context import Context
from ..oidc import ClientCredentials, OAuthError
from ..oidc_clients import SCOPES
from .auth import client
from .pages import render

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _ctx(request: Request) -> Context:
    return request.app.state.ctx


def _oauth_error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="tobira"'
    return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status,
                        headers=headers)


async def discovery(request: Request) -> Response:
    issuer = _ctx(request).settings.oidc_issuer
    return JSONResponse({
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [oidc_tokens.ID_TOKEN_ALG],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
                             "name", "email", "email_verified", "customer_code", "important_operations_allowed"],
        "acr_values_supported": ["phrh", "phr"],
        "prompt_values_supported": ["none", "login"],
        "ui_locales_supported": ["ja", "en"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
    }, headers={"Cache-Control": "public, max-age=300"})


async def jwks(request: Request) -> Response:
    keys = await _ctx(request).keys.current()
    return JSONResponse(keys.jwks, headers={"Cache-Control": "public, max-age=300"})


async def authorize(request: Request) -> Response:
    ctx = _ctx(request)
    params = parse_qs(request.url.query, keep_blank_values=True)
    session_hash = request.app.state.cookies.session_hash(request)
    try:
        answer = await ctx.db.run(oidc.authorize, params, session_hash, settings=ctx.settings, now=ctx.clock())
    except oidc.NoRedirect as exc:  # the redirect URI is not one we may send anything to
        response = render(request, "oauth_error.html", status_code=400, error=exc.error, description=exc.description)
        response.headers.update(NO_STORE)
        return response
    if answer.login is None:
        return RedirectResponse(answer.location, status_code=303, headers=NO_STORE)
    query = {"next": answer.location}
    ui_locale = params.get("ui_locales", [""])[0].split()
    if (ui_locale and ui_locale[0].lower().startswith("en")) or request.query_params.get("lang") == "en":
        query["lang"] = "en"
    return RedirectResponse("/login?" + urlencode(query), status_code=303, headers=NO_STORE)


async def _form(request: Request) -> dict[str, list[str]]:
    """A form-encoded body (RFC 6749 §4.1.3); anything else is invalid_request."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        return parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the body is not UTF-8") from None


def _one(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name) or []
    if len(values) > 1:
        raise OAuthError("invalid_request", f"{name} given more than once")
    return values[0] if values else None


def _credentials(request: Request, form: dict[str, list[str]]) -> ClientCredentials:
    """client_secret_basic (RFC 6749 §2.3.1: both parts form-encoded), client_secret_post, or a
    public client's bare client_id; never two of them at once."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "client authentication: Basic only", status=401)
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "a malformed Basic header", status=401) from None
        if not sep or _one(form, "client_secret") is not None:
            raise OAuthError("invalid_client", "a malformed Basic header, or two ways of authenticating", status=401)
        form_id = _one(form, "client_id")
        if form_id is not None and form_id != unquote(user):
            raise OAuthError("invalid_client", "client_id differs from the Basic header's", status=401)
        return ClientCredentials(unquote(user), unquote(password))
    client_id = _one(form, "client_id")
    if not client_id:
        raise OAuthError("invalid_client", "no client authentication", status=401)
    return ClientCredentials(client_id, _one(form, "client_secret"))


async def token(request: Request) -> Response:
    ctx = _ctx(request)
    try:
        form = await _form(request)
        credentials = _credentials(request, form)
        grant_type = _one(form, "grant_type")
        if grant_type != "authorization_code":
            raise OAuthError("unsupported_grant_type", "grant_type: authorization_code")
        code, redirect_uri, verifier = _one(form, "code"), _one(form, "redirect_uri"), _one(form, "code_verifier")
        if not code:
            raise OAuthError("invalid_request", "code is missing")
        now = ctx.clock()
        exchanged = await ctx.db.run(oidc.redeem_code, credentials, code=code, redirect_uri=redirect_uri,
                                     code_verifier=verifier, now=now, ip=client(request).ip)
    except OAuthError as exc:
        return _oauth_error(exc)
    keys = await ctx.keys.current()
    issuer, grant, user = ctx.settings.oidc_issuer, exchanged.grant, exchanged.user
    body = {
        "access_token": oidc_tokens.access_token(keys, issuer=issuer, grant=grant, user=user, now=now),
        "token_type": "Bearer",
        "expires_in": int(oidc_tokens.TOKEN_LIFE.total_seconds()),
        "scope": grant.scope,
        "id_token": oidc_tokens.id_token(keys, issuer=issuer, grant=grant, user=user, nonce=exchanged.nonce,
                                         settings=ctx.settings, now=now),
    }
    return JSONResponse(body, headers=NO_STORE)


async def userinfo(request: Request) -> Response:
    ctx = _ctx(request)
    header = request.headers.get("authorization", "")
    scheme, _, bearer = header.partition(" ")
    if request.method == "POST" and not bearer:
        form = await _form_or_empty(request)
        bearer, scheme = (form.get("access_token") or [""])[0], "Bearer"
    if scheme.lower() != "bearer" or not bearer:
        return _bearer_error(None)
    now = ctx.clock()
    claims = oidc_tokens.read_access_token(await ctx.keys.current(), bearer.strip(), issuer=ctx.settings.oidc_issuer,
                                           now=now)
    if claims is None:
        return _bearer_error("invalid_token")

    def read(db):
        grant = oidc.live_grant(db, claims[oidc_tokens.GRANT_CLAIM])
        return (grant, store.user_by_id(db, grant.user_id)) if grant else (None, None)

    grant, user = await ctx.db.run(read)
    if grant is None or user is None:
        return _bearer_error("invalid_token")
    body = {"sub": oidc_tokens.subject(user), **oidc_tokens.scoped_claims(grant, user, ctx.settings, now)}
    return JSONResponse(body, headers=NO_STORE)


async def _form_or_empty(request: Request) -> dict[str, list[str]]:
    try:
        return await _form(request)
    except OAuthError:
        return {}


def _bearer_error(error: str | None) -> Response:
    """RFC 6750 §3: 401 with WWW-Authenticate; no error code when no token was sent at all."""
    challenge = 'Bearer realm="tobira"' + (f', error="{error}"' if error else "")
    return JSONResponse({"error": error or "invalid_request", "error_description": "a valid access token is required"},
                        status_code=401, headers={**NO_STORE, "WWW-Authenticate": challenge})
