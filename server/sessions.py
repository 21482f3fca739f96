"""Browser sessions, kept server-side.

The browser holds a random 256-bit id (in a signed cookie, see web/auth.py); the database holds
only its SHA-256. A login, or a step-up, replaces the id (ASVS V3.2.1: no session fixation).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from . import store
from .config import Settings
from .db import Tx
from .errors import NotAuthenticated
from .rows import CustomerSession, SessionRow, UserRow
from .store_batch import Writer

ANONYMOUS, PENDING, ACTIVE = "anonymous", "pending", "active"
# The longest path a login lands on afterwards (next_path): an OpenID Connect authorization request
# comes back through the login page whole (oidc.py).
NEXT_MAX = 1024
SID_LENGTH = 22  # secrets.token_urlsafe(16): a session's public id (its OpenID Connect sid)


def hash_id(raw_id: str) -> str:
    return hashlib.sha256(raw_id.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    """A session just made: `raw_id` goes into the cookie and nowhere else."""

    raw_id: str
    row: SessionRow


def create(db: Writer, *, now: datetime, state: str, user: UserRow | None, auth_method: str | None = None,
           verified: bool = False, next_path: str | None = None, ip: str | None = None,
           user_agent: str | None = None, replacing: str | None = None,
           hold_until: datetime | None = None, synced: bool | None = None) -> NewSession:
    """Make a session with a fresh id; the one it replaces (if any) is gone for good.
    hold_until, synced: the hold of the passkey it logs in with (policy.important_operations_reason)
    and whether that passkey is a synced one (oidc_claims.py)."""
    if replacing:
        store.delete_session(db, replacing)
    raw_id = secrets.token_urlsafe(32)
    row = SessionRow(
        id_hash=hash_id(raw_id), user_id=user.id if user else None, state=state, auth_method=auth_method,
        created_at=now, last_seen_at=now, authenticated_at=now if state == ACTIVE else None,
        verified_at=now if verified else None, verified_by=auth_method if verified else None,
        next_path=next_path, ip=ip,
        user_agent=(user_agent or "")[:300] or None,
        login_hold_until=hold_until, verified_hold_until=hold_until if verified else None,
        login_synced=synced, verified_synced=synced if verified else None,
        sid=secrets.token_urlsafe(16) if state == ACTIVE else None,  # SID_LENGTH characters
    )
    store.add_session(db, row)
    return NewSession(raw_id, row)


def rotate(db: Writer, row: SessionRow, *, now: datetime, verified_by: str | None,
           hold_until: datetime | None = None, synced: bool | None = None) -> NewSession:
    """The same login under a new id (after a step-up): the old id stops working at once.

    Creation and login times carry over, so the absolute limit still counts from the login.
    hold_until, synced: the hold of the passkey the step-up used, and whether it is a synced one.
    """
    store.delete_session(db, row.id_hash)
    raw_id = secrets.token_urlsafe(32)
    new = SessionRow(
        id_hash=hash_id(raw_id), user_id=row.user_id, state=row.state, auth_method=row.auth_method,
        created_at=row.created_at, last_seen_at=now, authenticated_at=row.authenticated_at,
        verified_at=now if verified_by else row.verified_at, verified_by=verified_by or row.verified_by,
        next_path=None, ip=row.ip, user_agent=row.user_agent, login_hold_until=row.login_hold_until,
        verified_hold_until=hold_until if verified_by else row.verified_hold_until,
        login_synced=row.login_synced, verified_synced=synced if verified_by else row.verified_synced, sid=row.sid,
    )
    store.add_session(db, new)
    return NewSession(raw_id, new)


def expired(row: SessionRow, *, now: datetime, settings: Settings) -> bool:
    limit = settings.session_absolute if row.state == ACTIVE else settings.pending_login_ttl
    return now - row.last_seen_at > settings.session_idle or now - row.created_at > limit


def load(db: Tx, id_hash: str, *, now: datetime, settings: Settings) -> SessionRow | None:
    """The live session with this id, or None; an expired one is deleted as it is found."""
    row = store.session_by_hash(db, id_hash)
    return None if row is None else _alive(db, row, now=now, settings=settings)


def load_with_customer(db: Tx, id_hash: str, *, now: datetime,
                       settings: Settings) -> tuple[SessionRow, UserRow] | None:
    """The live session with this id and its customer, whole, in one statement; None for none (or
    a session without a customer)."""
    found = store.session_and_customer(db, id_hash)
    row = None if found is None else _alive(db, found[0], now=now, settings=settings)
    return None if row is None or found is None else (row, found[1])


def logged_in_with_customer(db: Tx, id_hash: str, *, now: datetime, settings: Settings) -> CustomerSession | None:
    """The live logged-in session with its customer's code, name and passkey count, in one statement
    (what GET /api/session answers: every page and every other service asks it), or None."""
    found = store.session_with_customer(db, id_hash)
    if found is None or found.session.state != ACTIVE:
        return None
    row = _alive(db, found.session, now=now, settings=settings)
    return None if row is None else replace(found, session=row)


def _alive(db: Tx, row: SessionRow, *, now: datetime, settings: Settings) -> SessionRow | None:
    if expired(row, now=now, settings=settings):
        store.delete_expired_session(db, row.id_hash)
        return None
    # Write the idle clock at most once a minute: a write on every request costs more than it buys.
    if (now - row.last_seen_at).total_seconds() > 60:
        store.touch_session(db, row.id_hash, now)
        return replace(row, last_seen_at=now)
    return row


def customer_of(db: Tx, session: SessionRow) -> UserRow:
    """The customer of a logged-in session, read now; NotAuthenticated when they are gone."""
    user = store.user_by_id(db, session.customer_id)
    if user is None:
        raise NotAuthenticated()
    return user


def end(db: Tx, id_hash: str) -> SessionRow | None:
    """End the session for good; the session as it was, for the one caller that ended it."""
    return store.take_session(db, id_hash)
