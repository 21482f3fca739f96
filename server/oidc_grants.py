"""The token endpoint's grants (authorization_code, refresh_token), revocation (RFC 7009) and
introspection (RFC 7662): who may have which tokens, decided against the database. The tokens
themselves are made by oidc_tokens.py."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import oidc_clients, store, store_oidc
from .db import Tx, commits_refusals
from .oidc import PKCE, OAuthError
from .oidc_clients import App, hash_secret
from .rows import GrantRow, RefreshTokenRow, UserRow

# How long a refresh token family lives, from the code exchange: each refresh makes a new token
# with the same end (a stolen refresh token cannot be kept alive by using it).
REFRESH_LIFE = timedelta(days=30)


@dataclass(frozen=True)
class ClientCredentials:
    """Who calls the token endpoint: client_secret_basic, client_secret_post, or none (public)."""

    client_id: str
    secret: str | None


def authenticate(db: Tx, given: ClientCredentials, *, confidential: bool = False) -> App:
    """The calling app; invalid_client (401) for an unknown one, a wrong or missing secret, or a
    secret sent by a public client. confidential: public clients are refused (introspection, revocation)."""
    app = oidc_clients.find(db, given.client_id)
    if app is None:
        raise OAuthError("invalid_client", "unknown client", status=401)
    if app.public:
        if given.secret is not None or confidential:
            raise OAuthError("invalid_client", "a public client has no secret" if given.secret is not None
                             else "only a confidential client may call this endpoint", status=401)
    elif given.secret is None or not app.secret_matches(given.secret):
        raise OAuthError("invalid_client", "client authentication failed", status=401)
    return app


@dataclass(frozen=True)
class Granted:
    """What the token endpoint answers with: the grant its tokens hang on, its customer, the nonce
    the ID token repeats (None after a refresh), and a new refresh token if the grant has one."""

    grant: GrantRow
    user: UserRow
    nonce: str | None
    refresh_token: str | None


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _new_refresh_token(db: Tx, grant: GrantRow, *, now: datetime, expires_at: datetime) -> str | None:
    if "offline_access" not in grant.scope.split():
        return None
    token = secrets.token_urlsafe(32)
    store_oidc.add_refresh_token(db, RefreshTokenRow(token_hash=hash_secret(token), grant_id=grant.id,
                                                     created_at=now, expires_at=expires_at, used_at=None))
    return token


def _standing(db: Tx, grant: GrantRow) -> UserRow:
    user = store.user_by_id(db, grant.user_id)
    if grant.revoked_at is not None or user is None or user.held_at is not None:
        raise OAuthError("invalid_grant", "the grant was revoked, or the account is on hold")
    return user


def _revoke_family(db: Tx, grant: GrantRow, app: App, now: datetime, ip: str | None, kind: str) -> None:
    if store_oidc.revoke_grant(db, grant.id, now):
        store.add_event(db, kind=kind, when=now, user_id=grant.user_id, ip=ip, client_id=app.client_id)


@commits_refusals  # a code that was tried is used up; a replay's revocation stays
def redeem_code(db: Tx, credentials: ClientCredentials, *, code: str, redirect_uri: str | None,
                code_verifier: str | None, now: datetime, ip: str | None) -> Granted:
    """The authorization code grant (RFC 6749 §4.1.3 with RFC 7636 §4.6), for the calling app. A
    code works once: its second use revokes the grant it made (RFC 6749 §4.1.2: "SHOULD revoke ...
    all tokens previously issued based on that authorization code")."""
    app = authenticate(db, credentials)
    found = store_oidc.code_by_hash(db, hash_secret(code)) if 0 < len(code) <= 128 else None
    if found is None:
        raise OAuthError("invalid_grant", "unknown authorization code")
    grant = store_oidc.grant_by_id(db, found.grant_id)
    if grant is None or grant.client_id != app.client_id:
        # Another app's code (or a grant gone with its client): not this caller's to use up.
        raise OAuthError("invalid_grant", "the code was issued to another client")
    used = store_oidc.use_code(db, found.code_hash, now)
    if used is None:  # used before (or at this moment, by a racing request)
        _revoke_family(db, grant, app, now, ip, "oauth_code_replayed")
        raise OAuthError("invalid_grant", "the code was already used: what it issued is revoked")
    if used.expires_at <= now:
        raise OAuthError("invalid_grant", "the code has expired")
    if redirect_uri != used.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request's")
    if code_verifier is None or not PKCE.fullmatch(code_verifier) \
            or not secrets.compare_digest(_s256(code_verifier), used.code_challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    user = _standing(db, grant)
    return Granted(grant, user, used.nonce, _new_refresh_token(db, grant, now=now, expires_at=now + REFRESH_LIFE))


@commits_refusals  # a reused refresh token's revocation stays
def refresh(db: Tx, credentials: ClientCredentials, *, token: str, scope: str | None, now: datetime,
            ip: str | None) -> Granted:
    """The refresh token grant (RFC 6749 §6), rotated at each use (RFC 9700 §4.14.2): the token
    presented is used up and a new one given; a used one presented again means two holders, one
    of them a thief, and the whole family (the grant) is revoked."""
    app = authenticate(db, credentials)
    found = store_oidc.refresh_token_by_hash(db, hash_secret(token)) if 0 < len(token) <= 128 else None
    grant = store_oidc.grant_by_id(db, found.grant_id) if found else None
    if found is None or grant is None or grant.client_id != app.client_id:
        raise OAuthError("invalid_grant", "unknown refresh token, or another client's")
    if scope is not None and not set(scope.split()) <= set(grant.scope.split()):
        raise OAuthError("invalid_scope", "a refresh cannot widen the grant's scope")
    used = store_oidc.use_refresh_token(db, found.token_hash, now)
    if used is None:
        _revoke_family(db, grant, app, now, ip, "oauth_refresh_reused")
        raise OAuthError("invalid_grant", "the refresh token was already used: its family is revoked")
    if used.expires_at <= now:
        raise OAuthError("invalid_grant", "the refresh token has expired")
    user = _standing(db, grant)
    return Granted(grant, user, None, _new_refresh_token(db, grant, now=now, expires_at=used.expires_at))


def live_grant(db: Tx, grant_id: str) -> GrantRow | None:
    """A grant that still stands (its tokens are good while they last), or None."""
    grant = store_oidc.grant_by_id(db, grant_id)
    return grant if grant is not None and grant.revoked_at is None else None


def grant_of_refresh_token(db: Tx, token: str, now: datetime) -> GrantRow | None:
    """The live grant of a refresh token still usable, or None."""
    found = store_oidc.refresh_token_by_hash(db, hash_secret(token)) if 0 < len(token) <= 128 else None
    if found is None or found.used_at is not None or found.expires_at <= now:
        return None
    return live_grant(db, found.grant_id)


def revoke(db: Tx, app: App, grant_id: str | None, *, now: datetime, ip: str | None) -> None:
    """RFC 7009: the token's grant ends, with every token it issued; a token that is unknown, or
    another app's, changes nothing and is not told apart (§2.2)."""
    grant = store_oidc.grant_by_id(db, grant_id) if grant_id else None
    if grant is not None and grant.client_id == app.client_id:
        _revoke_family(db, grant, app, now, ip, "oauth_token_revoked")
