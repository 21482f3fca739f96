"""The queries of OpenID Connect's tables: the apps (clients), the signing keys, the grants and
their authorization codes. Same rules as store.py: SQLAlchemy Core, frozen rows of rows.py."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone

from sqlalchemy import Table, bindparam as _p, delete, select, update

from .db import Tx
from .rows import AuthorizationCodeRow, ClientRow, GrantRow, LogoutDeliveryRow, RefreshTokenRow, SigningKeyRow
from .store import first, tables, written

clients: Table = tables["oauth_clients"]
keys: Table = tables["signing_keys"]
grants: Table = tables["oauth_grants"]
codes: Table = tables["oauth_codes"]
refresh_tokens: Table = tables["oauth_refresh_tokens"]
deliveries: Table = tables["logout_deliveries"]
NEVER = datetime(9999, 1, 1, tzinfo=timezone.utc)  # a delivery given up: never due again


# --- clients -------------------------------------------------------------------------------

_CLIENT = select(clients).where(clients.c.client_id == _p("id"))


def add_client(db: Tx, client: ClientRow) -> None:
    db.execute(clients.insert(), asdict(client))


def client_by_id(db: Tx, client_id: str) -> ClientRow | None:
    return first(db, _CLIENT, {"id": client_id}, ClientRow)


def all_clients(db: Tx) -> list[ClientRow]:
    return [ClientRow(*row) for row in db.read(select(clients).order_by(clients.c.created_at, clients.c.client_id))]


def remove_client(db: Tx, client_id: str) -> bool:
    """Its grants, codes and tokens go with it (ON DELETE CASCADE)."""
    return db.execute(delete(clients).where(clients.c.client_id == client_id)).rowcount > 0


def set_client_secret(db: Tx, client_id: str, secret_hash: str) -> bool:
    """Only a confidential client has a secret to replace."""
    return db.execute(update(clients).where(clients.c.client_id == client_id, clients.c.secret_hash.is_not(None))
                      .values(secret_hash=secret_hash)).rowcount > 0


# --- signing keys --------------------------------------------------------------------------

def add_signing_key(db: Tx, key: SigningKeyRow) -> None:
    db.execute(keys.insert(), asdict(key))


def signing_keys(db: Tx, *, retired_after: datetime) -> list[SigningKeyRow]:
    """The keys in use and those retired after the given time, newest first."""
    statement = (select(keys).where(keys.c.retired_at.is_(None) | (keys.c.retired_at > retired_after))
                 .order_by(keys.c.created_at.desc(), keys.c.kid))
    return [SigningKeyRow(*row) for row in db.read(statement)]


def retire_signing_keys(db: Tx, when: datetime) -> int:
    return db.execute(update(keys).where(keys.c.retired_at.is_(None)).values(retired_at=when)).rowcount


def delete_retired_keys(db: Tx, *, retired_before: datetime) -> int:
    return db.execute(delete(keys).where(keys.c.retired_at < retired_before)).rowcount


# --- grants and codes ----------------------------------------------------------------------

_GRANT = select(grants).where(grants.c.id == _p("id"))
_USE_CODE = (update(codes).where(codes.c.code_hash == _p("h"), codes.c.used_at.is_(None))
             .values(used_at=_p("now")).returning(*codes.c))
_CODE = select(codes).where(codes.c.code_hash == _p("h"))
_REVOKE = update(grants).where(grants.c.id == _p("gid"), grants.c.revoked_at.is_(None)).values(revoked_at=_p("now"))


def add_grant(db: Tx, grant: GrantRow) -> None:
    db.execute(grants.insert(), asdict(grant))


def grant_by_id(db: Tx, grant_id: str) -> GrantRow | None:
    return first(db, _GRANT, {"id": grant_id}, GrantRow)


def revoke_grant(db: Tx, grant_id: str, now: datetime) -> bool:
    return db.execute(_REVOKE, {"gid": grant_id, "now": now}).rowcount > 0


def add_code(db: Tx, code: AuthorizationCodeRow) -> None:
    db.execute(codes.insert(), asdict(code))


def use_code(db: Tx, code_hash: str, now: datetime) -> AuthorizationCodeRow | None:
    """Mark the code used and return it, once (compare-and-set: two racing exchanges get one)."""
    return written(db.execute_alone(_USE_CODE, {"h": code_hash, "now": now}), AuthorizationCodeRow)


def code_by_hash(db: Tx, code_hash: str) -> AuthorizationCodeRow | None:
    return first(db, _CODE, {"h": code_hash}, AuthorizationCodeRow)


def delete_expired_codes(db: Tx, *, expired_before: datetime) -> int:
    """Kept a while after they expire, so a replay is still recognised (and revokes its grant)."""
    return db.execute(delete(codes).where(codes.c.expires_at < expired_before)).rowcount


def revoke_grants_of_sessions(db: Tx, sids: list[str], now: datetime) -> list[GrantRow]:
    """Revoke the grants still standing that were made in these sessions; those grants."""
    if not sids:
        return []
    revoked = db.execute(update(grants).where(grants.c.sid.in_(sids), grants.c.revoked_at.is_(None))
                         .values(revoked_at=now).returning(*grants.c))
    return [GrantRow(*row) for row in revoked]


# --- refresh tokens ------------------------------------------------------------------------

_REFRESH = select(refresh_tokens).where(refresh_tokens.c.token_hash == _p("h"))
_USE_REFRESH = (update(refresh_tokens).where(refresh_tokens.c.token_hash == _p("h"), refresh_tokens.c.used_at.is_(None))
                .values(used_at=_p("now")).returning(*refresh_tokens.c))


def add_refresh_token(db: Tx, token: RefreshTokenRow) -> None:
    db.execute(refresh_tokens.insert(), asdict(token))


def refresh_token_by_hash(db: Tx, token_hash: str) -> RefreshTokenRow | None:
    return first(db, _REFRESH, {"h": token_hash}, RefreshTokenRow)


def use_refresh_token(db: Tx, token_hash: str, now: datetime) -> RefreshTokenRow | None:
    """Mark it used and return it, once (compare-and-set: of two racing refreshes one wins)."""
    return written(db.execute_alone(_USE_REFRESH, {"h": token_hash, "now": now}), RefreshTokenRow)


def delete_expired_refresh_tokens(db: Tx, *, expired_before: datetime) -> int:
    return db.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at < expired_before)).rowcount


def delete_ended_grants(db: Tx, *, ended_before: datetime) -> int:
    """Grants revoked long ago (their codes and refresh tokens go with them)."""
    return db.execute(delete(grants).where(grants.c.revoked_at < ended_before)).rowcount


# --- back-channel logout deliveries ----------------------------------------------------------

def add_delivery(db: Tx, *, client_id: str, sid: str, user_id: int, now: datetime) -> None:
    db.execute(deliveries.insert(), {"client_id": client_id, "sid": sid, "user_id": user_id, "created_at": now,
                                     "next_attempt_at": now, "attempts": 0})


def claim_deliveries(db: Tx, *, now: datetime, until: datetime, limit: int) -> list[LogoutDeliveryRow]:
    """Deliveries due and not claimed by another sender, claimed until `until` (a sender that dies
    leaves them to be claimed again then: a restart loses none)."""
    due = (select(deliveries.c.id).where(deliveries.c.delivered_at.is_(None), deliveries.c.next_attempt_at <= now,
                                         (deliveries.c.claimed_until.is_(None)) | (deliveries.c.claimed_until < now))
           .order_by(deliveries.c.id).limit(limit))
    if db.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = db.execute(update(deliveries).where(deliveries.c.id.in_(due.scalar_subquery()))
                         .values(claimed_until=until).returning(*deliveries.c))
    return sorted((LogoutDeliveryRow(*row) for row in claimed), key=lambda row: row.id or 0)


def delivered(db: Tx, delivery_id: int, now: datetime) -> None:
    db.execute(update(deliveries).where(deliveries.c.id == delivery_id)
               .values(delivered_at=now, claimed_until=None, last_error=None))


def delivery_failed(db: Tx, delivery_id: int, *, next_attempt_at: datetime | None, error: str) -> None:
    """Try again at next_attempt_at; None: given up (kept, with its error, for the operator)."""
    db.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(
        attempts=deliveries.c.attempts + 1, claimed_until=None, last_error=error[:300],
        next_attempt_at=next_attempt_at or NEVER))


def deliveries_of(db: Tx, user_id: int) -> list[LogoutDeliveryRow]:
    return [LogoutDeliveryRow(*row) for row in db.read(select(deliveries).where(deliveries.c.user_id == user_id)
                                                       .order_by(deliveries.c.id))]
