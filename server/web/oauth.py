"""The OpenID Connect endpoints (contract: "OpenID Connect"): translation only, oidc*.py decides.

Errors here speak OAuth, not the contract's JSON API: `{"error", "error_description"}` from the
token and userinfo endpoints (RFC 6749 §5.2, RFC 6750 §3), a redirect to the app's registered URI
from the authorization endpoint, or an error page when that URI cannot be trusted.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote, urlencode

from itsdangerous import BadSignature, URLSafeTimedSerializer

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from .. import login, oidc, oidc_clients, oidc_grants, oidc_logout, oidc_tokens, store
from ..context import Context
from ..oidc import OAuthError
from ..oidc_grants import ClientCredentials
from ..oidc_clients import SCOPES
from .auth import client, logged_in
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
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "end_session_endpoint": f"{issuer}/oauth/logout",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
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
    })


async def jwks(request: Request) -> Response:
    keys = await _ctx(request).keys.current()
    return JSONResponse(keys.jwks)


async def authorization(request: Request) -> Response:
    ctx = _ctx(request)
    params = parse_qs(request.url.query, keep_blank_values=True)
    session_hash = request.app.state.cookies.session_hash(request)
    try:
        answer = await ctx.db.run(oidc.authorize, params, session_hash, settings=ctx.settings, now=ctx.clock())
    except oidc.NoRedirect as exc:  # the redirect URI is not one we may send anything to
        return _error_page(request, exc)
    if not answer.log_in_first:
        return RedirectResponse(answer.location, status_code=303, headers=NO_STORE)
    query = {"next": answer.location}
    if answer.ui_locale == "en" or request.query_params.get("lang") == "en":
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
    now, ip = ctx.clock(), client(request).ip
    try:
        form = await _form(request)
        credentials = _credentials(request, form)
        grant_type = _one(form, "grant_type")
        if grant_type == "authorization_code":
            code = _one(form, "code")
            if not code:
                raise OAuthError("invalid_request", "code is missing")
            granted = await ctx.db.run(oidc_grants.redeem_code, credentials, code=code,
                                       redirect_uri=_one(form, "redirect_uri"),
                                       code_verifier=_one(form, "code_verifier"), now=now, ip=ip)
        elif grant_type == "refresh_token":
            refresh_token = _one(form, "refresh_token")
            if not refresh_token:
                raise OAuthError("invalid_request", "refresh_token is missing")
            granted = await ctx.db.run(oidc_grants.refresh, credentials, token=refresh_token,
                                       scope=_one(form, "scope"), now=now, ip=ip)
        else:
            raise OAuthError("unsupported_grant_type", "grant_type: authorization_code or refresh_token")
    except OAuthError as exc:
        return _oauth_error(exc)
    keys = await ctx.keys.current()
    issuer, grant, user = ctx.settings.oidc_issuer, granted.grant, granted.user
    body = {
        "access_token": oidc_tokens.access_token(keys, issuer=issuer, grant=grant, user=user, now=now),
        "token_type": "Bearer",
        "expires_in": int(oidc_tokens.TOKEN_LIFE.total_seconds()),
        "scope": grant.scope,
        "id_token": oidc_tokens.id_token(keys, issuer=issuer, grant=grant, user=user, nonce=granted.nonce,
                                         settings=ctx.settings, now=now),
    }
    if granted.refresh_token is not None:
        body["refresh_token"] = granted.refresh_token
    return JSONResponse(body, headers=NO_STORE)


async def _confidential_call(request: Request) -> tuple[oidc_clients.App, str]:
    """An introspection or revocation request: a confidential client, authenticated, and its token."""
    ctx = _ctx(request)
    form = await _form(request)
    credentials = _credentials(request, form)
    app = await ctx.db.run(oidc_grants.authenticate, credentials, confidential=True)
    token_value = _one(form, "token")
    if not token_value:
        raise OAuthError("invalid_request", "token is missing")
    return app, token_value


async def _grant_of(ctx: Context, token_value: str) -> tuple[str | None, dict | None]:
    """(the grant id, the access token's claims) of a token: an access token we signed and that has
    not expired, or a refresh token still usable; (None, None) for anything else."""
    now = ctx.clock()
    claims = oidc_tokens.read_access_token(await ctx.keys.current(), token_value, issuer=ctx.settings.oidc_issuer,
                                           now=now) if token_value.count(".") == 2 else None
    if claims is not None:
        return claims[oidc_tokens.GRANT_CLAIM], claims
    grant = await ctx.db.run(oidc_grants.grant_of_refresh_token, token_value, now)
    return (grant.id if grant else None), None


async def introspect(request: Request) -> Response:
    """RFC 7662: whether a token is active now, and what it stands for (for the broker's APIs)."""
    ctx = _ctx(request)
    try:
        _app, token_value = await _confidential_call(request)
    except OAuthError as exc:
        return _oauth_error(exc)
    grant_id, claims = await _grant_of(ctx, token_value)
    grant = await ctx.db.run(oidc_grants.live_grant, grant_id) if grant_id else None
    if grant is None:
        return JSONResponse({"active": False}, headers=NO_STORE)
    body: dict = {"active": True, "client_id": grant.client_id, "scope": grant.scope,
                  "auth_time": int(grant.auth_time.timestamp()), "amr": grant.amr.split(), "iss": ctx.settings.oidc_issuer}
    if grant.acr:
        body["acr"] = grant.acr
    if claims is not None:
        body.update(token_type="Bearer", sub=claims["sub"], exp=claims["exp"], iat=claims["iat"], jti=claims["jti"])
    else:
        body["token_type"] = "refresh_token"
    return JSONResponse(body, headers=NO_STORE)


async def revoke(request: Request) -> Response:
    """RFC 7009: 200 whether or not the token was known (§2.2)."""
    ctx = _ctx(request)
    try:
        app, token_value = await _confidential_call(request)
    except OAuthError as exc:
        return _oauth_error(exc)
    grant_id, _claims = await _grant_of(ctx, token_value)
    await ctx.db.run(oidc_grants.revoke, app, grant_id, now=ctx.clock(), ip=client(request).ip)
    return Response(status_code=200, headers=NO_STORE)


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
        grant = oidc_grants.live_grant(db, claims[oidc_tokens.GRANT_CLAIM])
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


CONFIRM_SECONDS = 600


def _confirmations(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_ctx(request).settings.secret_key, salt="tobira.oauth-logout")


async def end_session(request: Request) -> Response:
    """RP-initiated logout: end the customer's session when an ID token of that session asks, or
    once the customer confirms on our page (a bare link from anywhere must not log anyone out);
    then back to the app's registered post-logout URI, or our own "logged out" page."""
    ctx = _ctx(request)
    if request.method == "POST":
        try:
            params = await _form(request)
        except OAuthError as exc:
            return _error_page(request, exc)
    else:
        params = parse_qs(request.url.query, keep_blank_values=True)
    keys = await ctx.keys.current()
    try:
        asked = await ctx.db.run(oidc_logout.parse_logout, params, keys, issuer=ctx.settings.oidc_issuer,
                                 now=ctx.clock())
    except OAuthError as exc:
        return _error_page(request, exc)
    session = await logged_in(request)
    confirmed = session is not None and _confirmed(request, params, session.id_hash)
    if session is not None and not (asked.names(session) or confirmed):
        hidden = {k: v[0] for k, v in params.items() if k in ("id_token_hint", "client_id", "post_logout_redirect_uri",
                                                              "state", "ui_locales") and v}
        hidden["confirm"] = _confirmations(request).dumps(session.id_hash)
        response = render(request, "logout_confirm.html", hidden=hidden, app_name=asked.app.name if asked.app else None)
        response.headers.update(NO_STORE)
        return response
    if session is not None:
        await login.logout(ctx, session, client(request))
    back = asked.back_to_app()
    # After our own confirmation form, a link back, not a redirect: our pages allow forms to lead
    # only to ourselves (CSP form-action), and a browser holds a form's redirect to that too.
    response = (RedirectResponse(back, status_code=303, headers=NO_STORE) if back and not confirmed
                else render(request, "logged_out.html", back=back, app_name=asked.app.name if asked.app else None))
    request.app.state.cookies.clear_session(response)
    return response


def _confirmed(request: Request, params: dict[str, list[str]], session_hash: str) -> bool:
    """The customer pressed "log out" on our confirmation page, for this session, a moment ago."""
    token = (params.get("confirm") or [""])[0]
    if request.method != "POST" or not token:
        return False
    try:
        return _confirmations(request).loads(token, max_age=CONFIRM_SECONDS) == session_hash
    except BadSignature:
        return False


def _error_page(request: Request, exc: OAuthError) -> Response:
    """An OAuth error where no redirect may carry it (an untrusted redirect URI, a bad logout request)."""
    response = render(request, "oauth_error.html", status_code=400, error=exc.error, description=exc.description)
    response.headers.update(NO_STORE)
    return response
