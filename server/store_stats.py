"""The counting queries behind `tobira stats` (passkey adoption): read-only, over whole tables."""

from __future__ import annotations

from datetime import datetime
from sqlalchemy import Table, distinct, func, select

from .db import Tx
from .store import tables

users: Table = tables["users"]
credentials: Table = tables["credentials"]
events: Table = tables["security_events"]


def _has_passkey():
    return select(credentials.c.id).where(credentials.c.user_id == users.c.id).exists()


def count_customers(db: Tx, *, active_since: datetime | None = None, with_passkey: bool | None = None) -> int:
    """Customers, optionally only those who logged in since a time, with or without a passkey."""
    statement = select(func.count()).select_from(users)
    if active_since is not None:
        statement = statement.where(users.c.last_login_at >= active_since)
    if with_passkey is True:
        statement = statement.where(_has_passkey())
    elif with_passkey is False:
        statement = statement.where(~_has_passkey())
    return db.read(statement).scalar_one()


def codes_without_passkey(db: Tx, *, active_since: datetime) -> list[str]:
    """The customer codes of those active since a time who hold no passkey, in code order."""
    statement = (select(users.c.customer_code).where(users.c.last_login_at >= active_since, ~_has_passkey())
                 .order_by(users.c.customer_code))
    return list(db.read(statement).scalars())


def count_passkeys(db: Tx, *, synced: bool | None = None, held_at: datetime | None = None) -> int:
    """Passkeys; synced: by the backup-eligible flag; held_at: those on hold at that time."""
    statement = select(func.count()).select_from(credentials)
    if synced is not None:
        statement = statement.where(credentials.c.backup_eligible.is_(synced))
    if held_at is not None:
        statement = statement.where(credentials.c.hold_until > held_at)
    return db.read(statement).scalar_one()


def customers_with_passkey(db: Tx) -> int:
    return db.read(select(func.count(distinct(credentials.c.user_id)))).scalar_one()


def events_since(db: Tx, kind: str, since: datetime) -> list[tuple[datetime, str | None]]:
    """(when, detail JSON) of the events of a kind since a time, oldest first."""
    statement = (select(events.c.created_at, events.c.detail)
                 .where(events.c.kind == kind, events.c.created_at >= since).order_by(events.c.id))
    return [tuple(row) for row in db.read(statement)]


def count_events(db: Tx, kind: str, *, detail_like: str | None = None) -> int:
    """Events of a kind, all time; detail_like: a fragment of their detail (JSON written with
    sorted keys and ", " / ": " separators by store.add_event, so a fragment is stable)."""
    statement = select(func.count()).select_from(events).where(events.c.kind == kind)
    if detail_like is not None:
        statement = statement.where(events.c.detail.contains(detail_like, autoescape=True))
    return db.read(statement).scalar_one()
