"""Logout everywhere means everywhere: when a Tobira session ends for good (the customer's logout,
/oauth/logout, the support desk's end-sessions, reset-passkeys and hold; expiry excepted), the
apps that got tokens in it lose them (their grants are revoked, refresh tokens included), and each
app that registered a back-channel logout URI is sent a logout token (OpenID Connect Back-Channel
Logout 1.0): queued in the same transaction, like a notice in the outbox, and retried by the
LogoutSender until the app answers 200, so a restart loses none.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Mapping
from urllib.parse import urlencode

import httpx
from joserfc import jwt

from . import oidc_clients, store, store_oidc
from .db import Database, Tx
from .oidc import TEXT_MAX, OAuthError, single_value
from .oidc_clients import App
from .oidc_keys import KeyRing, Keys
from .oidc_tokens import ID_TOKEN_ALG, subject, verified_claims
from .queueworker import QueueWorker
from .rows import LogoutDeliveryRow, SessionRow

log = logging.getLogger("tobira.oidc")
EVENT = "http://schemas.openid.net/event/backchannel-logout"
TOKEN_LIFE = timedelta(minutes=2)
ATTEMPTS = 10  # then given up (the row stays, with its last error, for the operator)
TIMEOUT_SECONDS = 5.0


def sessions_ended(db: Tx, sids: list[str | None], now: datetime) -> int:
    """Revoke what the apps got in these sessions and queue their back-channel logouts; how many."""
    ended = [sid for sid in sids if sid]
    grants = store_oidc.revoke_grants_of_sessions(db, ended, now)
    owed = sorted({(grant.client_id, grant.sid, grant.user_id) for grant in grants})
    queued = 0
    for client_id, sid, user_id in owed:
        app = oidc_clients.find(db, client_id)
        if app is not None and app.backchannel_logout_uri:
            store_oidc.add_delivery(db, client_id=client_id, sid=sid, user_id=user_id, now=now)
            queued += 1
    return queued


def logout_token(keys, *, issuer: str, client_id: str, sid: str, sub: str, now: datetime) -> str:
    """Back-Channel Logout §2.4: sub and sid, the logout event, never a nonce; typ logout+jwt (§2.4)."""
    claims = {"iss": issuer, "aud": client_id, "iat": int(now.timestamp()), "exp": int((now + TOKEN_LIFE).timestamp()),
              "jti": secrets.token_urlsafe(16), "sub": sub, "sid": sid, "events": {EVENT: {}}}
    key = keys.signer(ID_TOKEN_ALG)
    return jwt.encode({"alg": ID_TOKEN_ALG, "kid": key.kid, "typ": "logout+jwt"}, claims, key)


class LogoutSender(QueueWorker):
    """Sends the queued logout tokens; instances share the queue (each delivery is claimed by one)."""

    name = "back-channel logout"

    def __init__(self, db: Database, keys: KeyRing, issuer: str, clock: Callable[[], datetime], *,
                 idle_seconds: float = 5.0, batch: int = 20) -> None:
        super().__init__(idle_seconds=idle_seconds)
        self.db, self.keys, self.issuer, self.clock, self.batch = db, keys, issuer, clock, batch

    async def deliver_due(self) -> int:
        now = self.clock()
        rows = await self.db.run(store_oidc.claim_deliveries, now=now, until=now + timedelta(minutes=1),
                                 limit=self.batch)
        if not rows:
            return 0
        keys = await self.keys.current()
        delivered = 0
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
            for row in rows:
                delivered += await self._deliver(http, keys, row)
        return delivered

    async def _deliver(self, http: httpx.AsyncClient, keys, row: LogoutDeliveryRow) -> int:
        assert row.id is not None  # a stored row
        found = await self.db.run(_target, row)
        if found is None:  # the app or the customer is gone: nothing left to tell
            await self.db.run(store_oidc.delivered, row.id, self.clock())
            return 0
        uri, sub = found
        token = logout_token(keys, issuer=self.issuer, client_id=row.client_id, sid=row.sid, sub=sub, now=self.clock())
        try:
            response = await http.post(uri, data={"logout_token": token}, headers={"Cache-Control": "no-store"})
            error = None if response.status_code in (200, 204) else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        if error is None:
            await self.db.run(store_oidc.delivered, row.id, self.clock())
            return 1
        # Back off: 30 s, 1 min, 2 min ... at most an hour between tries, then give up.
        retry = None if row.attempts + 1 >= ATTEMPTS else self.clock() + timedelta(
            seconds=min(3600, 30 * 2 ** row.attempts))
        log.warning("back-channel logout failed", extra={"client_id": row.client_id, "error": error,
                                                         "given_up": retry is None})
        await self.db.run(store_oidc.delivery_failed, row.id, next_attempt_at=retry, error=error)
        return 0


def _target(db: Tx, row: LogoutDeliveryRow) -> tuple[str, str] | None:
    app = oidc_clients.find(db, row.client_id)
    user = store.user_by_id(db, row.user_id)
    if app is None or user is None or not app.backchannel_logout_uri:
        return None
    return app.backchannel_logout_uri, subject(user)


# --- RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) -----------------------------

@dataclass(frozen=True)
class LogoutRequest:
    """An app's request to end the customer's Tobira session, checked."""

    app: App | None
    post_logout_redirect_uri: str | None
    state: str | None
    hinted_sid: str | None  # the session of the ID token given as id_token_hint

    def names(self, session: SessionRow) -> bool:
        """Whether the hint names this very session: then the app's word is enough, no question asked."""
        return self.hinted_sid is not None and self.hinted_sid == session.sid

    def back_to_app(self) -> str | None:
        if self.post_logout_redirect_uri is None:
            return None
        query = urlencode({"state": self.state}) if self.state is not None else ""
        separator = "&" if "?" in self.post_logout_redirect_uri else "?"
        return self.post_logout_redirect_uri + (separator + query if query else "")


def parse_logout(db: Tx, params: Mapping[str, list[str]], keys: Keys, *, issuer: str, now: datetime) -> LogoutRequest:
    """OAuthError (shown as a page, never a redirect) for a hint that is not an unexpired ID token
    of ours, a client_id that contradicts it, or a post_logout_redirect_uri not registered for the
    app it names (§3: "MUST NOT perform post-logout redirection" to an unregistered URI)."""
    single = {name: single_value(params, name) for name in ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")}
    hinted_sid = audience = None
    if single["id_token_hint"]:
        claims = _hint_claims(single["id_token_hint"], keys, issuer=issuer, now=now)
        audience, hinted_sid = claims["aud"], claims.get("sid")
    client_id = single["client_id"] or audience
    if single["client_id"] and audience and single["client_id"] != audience:
        raise OAuthError("invalid_request", "client_id is not the id_token_hint's audience")
    app = oidc_clients.find(db, client_id) if client_id else None
    if client_id and app is None:
        raise OAuthError("invalid_request", "unknown client")
    redirect = single["post_logout_redirect_uri"]
    if redirect is not None and (app is None or redirect not in app.post_logout_redirect_uris):
        raise OAuthError("invalid_request", "post_logout_redirect_uri is not registered for this client")
    state = single["state"]
    if state is not None and len(state) > TEXT_MAX:
        raise OAuthError("invalid_request", f"state longer than {TEXT_MAX} characters")
    return LogoutRequest(app, redirect, state, hinted_sid if isinstance(hinted_sid, str) else None)


def _hint_claims(hint: str, keys: Keys, *, issuer: str, now: datetime) -> dict:
    # typ JWT or none: an access token or a logout token is no ID token
    claims = verified_claims(keys, hint, alg=ID_TOKEN_ALG, types=(None, "JWT"), issuer=issuer, now=now)
    if claims is None:
        raise OAuthError("invalid_request", "id_token_hint is not a valid, unexpired ID token of this issuer")
    if not isinstance(claims.get("aud"), str):
        raise OAuthError("invalid_request", "id_token_hint names no single audience")
    return claims
