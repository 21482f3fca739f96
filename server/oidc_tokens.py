"""The tokens an app gets: the ID token (OpenID Connect Core §2) and the access token, a JWT of
RFC 9068; what userinfo answers. Signed and checked with joserfc, with the keys of oidc_keys.py."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from . import oidc_claims
from .config import Settings
from .oidc_keys import TOKEN_LIFE, Keys
from .rows import GrantRow, UserRow

ID_TOKEN_ALG = "RS256"  # what every OpenID Connect client can check (Core §15.1)
# Access tokens are read by the broker's own APIs (or /oauth/introspect): ES256, a fifth of an
# RS256 signature's CPU (0.10 against 0.58 ms here), and RS256 stays published for those who want
# it (RFC 9068 §2.1 asks that it be supported, not that every token use it). bench/ "oidc".
ACCESS_TOKEN_ALG = "ES256"
ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068 §2.1: never mistaken for an ID token, nor one for it
GRANT_CLAIM = "grant"  # which grant an access token hangs on: a revoked grant ends its tokens


def subject(user: UserRow) -> str:
    """`sub`: stable and opaque. The user handle is 32 random bytes made at enrolment, never
    personal data and never changed (not by a passkey reset either); the customer code is neither."""
    return base64.urlsafe_b64encode(user.user_handle).rstrip(b"=").decode()


def _timestamp(when: datetime) -> int:
    return int(when.timestamp())


def id_token(keys: Keys, *, issuer: str, grant: GrantRow, user: UserRow, nonce: str | None,
             settings: Settings, now: datetime) -> str:
    claims: dict = {"iss": issuer, "sub": subject(user), "aud": grant.client_id, "azp": grant.client_id,
                    "iat": _timestamp(now), "exp": _timestamp(now + TOKEN_LIFE),
                    "auth_time": _timestamp(grant.auth_time), "amr": grant.amr.split(), "sid": grant.sid}
    if grant.acr:
        claims["acr"] = grant.acr
    if nonce is not None:
        claims["nonce"] = nonce
    claims.update(scoped_claims(grant, user, settings, now))
    key = keys.signer(ID_TOKEN_ALG)
    return jwt.encode({"alg": ID_TOKEN_ALG, "kid": key.kid, "typ": "JWT"}, claims, key)


def access_token(keys: Keys, *, issuer: str, grant: GrantRow, user: UserRow, now: datetime) -> str:
    claims: dict = {"iss": issuer, "sub": subject(user), "aud": issuer, "client_id": grant.client_id,
                    "iat": _timestamp(now), "exp": _timestamp(now + TOKEN_LIFE), "jti": secrets.token_urlsafe(16),
                    "scope": grant.scope, "auth_time": _timestamp(grant.auth_time), "amr": grant.amr.split(),
                    GRANT_CLAIM: grant.id}
    if grant.acr:
        claims["acr"] = grant.acr
    key = keys.signer(ACCESS_TOKEN_ALG)
    return jwt.encode({"alg": ACCESS_TOKEN_ALG, "kid": key.kid, "typ": ACCESS_TOKEN_TYPE}, claims, key)


def verified_claims(keys: Keys, token: str, *, alg: str, types: tuple[str | None, ...], issuer: str,
                    now: datetime, audience: str | None = None) -> dict | None:
    """The claims of a token we signed with `alg`, of one of these `typ`s (so one kind of token is
    never taken for another), from this issuer, unexpired, for `audience` (any, when None), with
    a subject; None for any fault at all."""
    try:
        decoded = jwt.decode(token, keys.public, algorithms=[alg])
        if decoded.header.get("typ") not in types:
            return None
        registry = JWTClaimsRegistry(now=_timestamp(now), leeway=0, iss={"essential": True, "value": issuer},
                                     aud={"essential": True, "value": audience} if audience else {"essential": True},
                                     exp={"essential": True}, sub={"essential": True})
        registry.validate(decoded.claims)
    except (JoseError, ValueError):
        return None
    return decoded.claims


def read_access_token(keys: Keys, token: str, *, issuer: str, now: datetime) -> dict | None:
    """The claims of an access token we signed that has not expired, or None (any fault at all)."""
    claims = verified_claims(keys, token, alg=ACCESS_TOKEN_ALG, types=(ACCESS_TOKEN_TYPE,), issuer=issuer,
                             now=now, audience=issuer)
    return claims if claims is not None and isinstance(claims.get(GRANT_CLAIM), str) else None


def scoped_claims(grant: GrantRow, user: UserRow, settings: Settings, now: datetime) -> dict:
    """The customer's claims the grant's scopes give (OpenID Connect Core §5.4; `tobira`: ours)."""
    scopes = set(grant.scope.split())
    claims: dict = {}
    if "profile" in scopes:
        claims["name"] = user.display_name
    if "email" in scopes and user.email:
        # The address the broker registered, where every one-time code and notice goes.
        claims.update(email=user.email, email_verified=True)
    if "tobira" in scopes:
        claims["customer_code"] = user.customer_code
        claims["important_operations_allowed"] = oidc_claims.important_operations_allowed(
            tuple(grant.amr.split()), grant.acr, settings, now)
    return claims
