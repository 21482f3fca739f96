"""The OpenAPI description of the OpenID Connect endpoints (server/web/oauth.py), merged into
/openapi.json by openapi.document. They speak OAuth, not the JSON API: form-encoded bodies where
the specs say so, `{"error", "error_description"}` errors (RFC 6749 §5.2), redirects and HTML pages
from the two endpoints a browser visits (authorize, logout). Standard clients read the discovery
document instead; this is for people and tools that read /openapi.json."""

from __future__ import annotations

from typing import Any

from .errors import PAYLOAD_TOO_LARGE, UNAVAILABLE
from .oidc import TEXT_MAX
from .oidc_clients import SCOPES
from .openapi_components import error_or_ref, obj, ref

TAG = {"name": "openid-connect", "description": "Single sign-on for the broker's apps (OpenID Connect)"}
_FORM = "application/x-www-form-urlencoded"
_OAUTH_ERROR = obj({"error": {"type": "string"}}, optional={"error_description": {"type": "string"}})
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _oauth_errors(*statuses: int) -> dict:
    answers = {str(status): _json("An OAuth error (RFC 6749 §5.2, RFC 6750 §3)", ref("OAuthError"))
               for status in statuses}
    answers["413"] = error_or_ref([PAYLOAD_TOO_LARGE.at()])
    answers["503"] = error_or_ref([UNAVAILABLE.at()])
    return answers


def _query(name: str, description: str, *, required: bool = False, **schema: Any) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "string", **schema}}


def _form(required: dict, optional: dict | None = None) -> dict:
    return {"required": True, "content": {_FORM: {"schema": obj(required, optional=optional)}}}


_S = {"type": "string"}
_CLIENT = {"client_id": _S, "client_secret": _S}  # client_secret_post; or HTTP Basic (RFC 6749 §2.3.1)
_SECURITY: list[dict[str, list]] = [{"clientBasic": []}, {}]  # Basic, or the client's id (and secret) in the form


def schemas() -> dict:
    return {
        "OAuthError": _OAUTH_ERROR,
        "TokenResponse": obj({"access_token": _S, "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"},
                              "scope": _S, "id_token": _S}, optional={"refresh_token": _S}),
        "Introspection": obj({"active": {"type": "boolean"}}, optional={
            "client_id": _S, "scope": _S, "token_type": _S, "sub": _S, "exp": {"type": "integer"},
            "iat": {"type": "integer"}, "jti": _S, "auth_time": {"type": "integer"}, "iss": _S,
            "amr": {"type": "array", "items": _S}, "acr": {"enum": ["phr", "phrh"]}}),
        "UserInfo": obj({"sub": _S}, optional={
            "name": _S, "email": _S, "email_verified": {"type": "boolean"}, "customer_code": _S,
            "important_operations_allowed": {"type": "boolean"}}),
    }


SECURITY_SCHEMES = {
    "clientBasic": {"type": "http", "scheme": "basic",
                    "description": "A confidential app: its client_id and client_secret (client_secret_basic)"},
    "accessToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An access token from POST /oauth/token (RFC 9068)"},
}


def paths() -> dict[str, dict[str, Any]]:
    described = _paths()
    for item in described.values():
        for operation in item.values():
            operation.setdefault("parameters", [])  # none needs an Origin: see web/middleware.py NO_ORIGIN_CHECK
    return described


def _paths() -> dict[str, dict[str, Any]]:
    tag = [TAG["name"]]
    text: dict[str, Any] = {"maxLength": TEXT_MAX}
    return {
        "/.well-known/openid-configuration": {"get": {
            "tags": tag, "operationId": "discovery", "summary": "OpenID Connect Discovery 1.0",
            "responses": {"200": _json("The provider's metadata", {"type": "object"})}}},
        "/oauth/jwks": {"get": {
            "tags": tag, "operationId": "jwks", "summary": "The public keys that sign tokens (RS256, ES256)",
            "responses": {"200": _json("A JWK Set", obj({"keys": {"type": "array", "items": {"type": "object"}}})),
                          "503": error_or_ref([UNAVAILABLE.at()])}}},
        "/oauth/authorize": {"get": {
            "tags": tag, "operationId": "authorization", "summary": "The authorization code flow (with PKCE S256)",
            "description": "A browser visits it. Answers with a redirect: to the app's registered redirect URI "
                           "(`code`, or `error`; with `state` and `iss`), or to Tobira's login page, which comes "
                           "back here. An unknown client or an unregistered redirect URI gets an error page.",
            "parameters": [
                _query("client_id", "The app", required=True), _query("redirect_uri", "Exactly as registered", required=True),
                _query("response_type", "Only `code`", required=True), _query("scope", f"`openid` and any of {' '.join(SCOPES[1:])}", required=True),
                _query("code_challenge", "BASE64URL(SHA-256(code_verifier))", required=True),
                _query("code_challenge_method", "Only `S256`", required=True),
                _query("state", "Sent back as it is", **text), _query("nonce", "Repeated in the ID token", **text),
                _query("prompt", "`none` or `login`"), _query("max_age", "Seconds", pattern="^[0-9]+$"),
                _query("acr_values", "`phr` or `phrh`: a passkey login is required"),
                _query("ui_locales", "`ja` or `en`"), _query("login_hint", "A customer code", **text)],
            "responses": {"303": {"description": "To the app (a code or an error) or to the login page"},
                          "400": {"description": "An error page: the redirect URI cannot be trusted",
                                  "content": _HTML},
                          "503": error_or_ref([UNAVAILABLE.at()])}}},
        "/oauth/token": {"post": {
            "tags": tag, "operationId": "token", "summary": "Codes and refresh tokens for tokens",
            "description": "`authorization_code` (with `code_verifier`) or `refresh_token` (rotated at each use; "
                           "a used one presented again revokes its family). No `Origin` needed.",
            "security": _SECURITY,
            "requestBody": _form({"grant_type": {"enum": ["authorization_code", "refresh_token"]}},
                                 {"code": _S, "redirect_uri": _S, "code_verifier": _S, "refresh_token": _S,
                                  "scope": _S, **_CLIENT}),
            "responses": {"200": _json("The tokens", ref("TokenResponse")), **_oauth_errors(400, 401)}}},
        "/oauth/userinfo": {method: {
            "tags": tag, "operationId": "userinfo" + ("_post" if method == "post" else ""), "summary": "The customer's claims the access token's scopes give",
            "security": [{"accessToken": []}],
            "responses": {"200": _json("Claims", ref("UserInfo")), **_oauth_errors(401)}} for method in ("get", "post")},
        "/oauth/introspect": {"post": {
            "tags": tag, "operationId": "introspect", "summary": "Is this token active? (RFC 7662; confidential apps)",
            "security": _SECURITY, "requestBody": _form({"token": _S}, {"token_type_hint": _S, **_CLIENT}),
            "responses": {"200": _json("The answer", ref("Introspection")), **_oauth_errors(400, 401)}}},
        "/oauth/revoke": {"post": {
            "tags": tag, "operationId": "revoke", "summary": "End a token and its grant (RFC 7009; confidential apps)",
            "security": _SECURITY, "requestBody": _form({"token": _S}, {"token_type_hint": _S, **_CLIENT}),
            "responses": {"200": {"description": "Done, or the token was not one to revoke (not told apart)"},
                          **_oauth_errors(400, 401)}}},
        "/oauth/logout": {method: {
            "tags": tag, "operationId": "end_session" + ("_post" if method == "post" else ""),
            "summary": "RP-initiated logout",
            "description": "With an unexpired ID token of the browser's session as `id_token_hint`, the session "
                           "ends at once; otherwise the customer is asked. Then back to a registered "
                           "`post_logout_redirect_uri` (with `state`), or a page.",
            "parameters": [_query("id_token_hint", "An ID token Tobira issued"), _query("client_id", "The app"),
                           _query("post_logout_redirect_uri", "Exactly as registered"), _query("state", "", **text)]
            if method == "get" else [],
            **({"requestBody": {"required": False, "content": {_FORM: {"schema": obj({}, optional={
                "id_token_hint": _S, "client_id": _S, "post_logout_redirect_uri": _S, "state": _S,
                "confirm": _S})}}}} if method == "post" else {}),
            "responses": {"200": {"description": "The question, or the logged-out page", "content": _HTML},
                          "303": {"description": "Back to the app"},
                          "400": {"description": "An error page: a bad hint or an unregistered URI",
                                  "content": _HTML},
                          "413": error_or_ref([PAYLOAD_TOO_LARGE.at()]),
                          "503": error_or_ref([UNAVAILABLE.at()])}} for method in ("get", "post")},
    }
