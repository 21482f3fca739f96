"""The queries of the rate-limit windows (`limits`' fixed windows when they live in the database:
ratelimit.SqlStorage). Counting is one statement that stands alone (Tx.execute_alone): a count
stays counted whatever the call does next, as a rate limit must."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, bindparam, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .db import Tx
from .rows import WindowRow
from .store import first, tables

windows: Table = tables["rate_limits"]
_p = bindparam


def _count_in_window_statement(dialect):
    upsert = dialect.insert(windows).values(
        key=_p("k"), count=_p("amount"), expires_at=_p("expires"))
    # In SET, rate_limits.* is the row's old value (excluded.* the one offered), in both databases.
    ended = windows.c.expires_at <= _p("now")
    return upsert.on_conflict_do_update(index_elements=[windows.c.key], set_={
        "count": case((ended, upsert.excluded["count"]), else_=windows.c.count + upsert.excluded["count"]),
        "expires_at": case((ended, upsert.excluded.expires_at), else_=windows.c.expires_at),
    }).returning(windows.c.count)


_COUNT_IN_WINDOW = {"sqlite": _count_in_window_statement(sqlite), "postgresql": _count_in_window_statement(postgresql)}
_UNCOUNT = (update(windows).where(windows.c.key == _p("k"), windows.c.expires_at > _p("now"))
            .values(count=case((windows.c.count > _p("amount"), windows.c.count - _p("amount")), else_=0))
            .returning(windows.c.count))
_WINDOW = select(windows).where(windows.c.key == _p("k"), windows.c.expires_at > _p("now"))


def count_in_window(db: Tx, key: str, *, amount: int, now: datetime, expires_at: datetime) -> int:
    """Add to a window's count in one statement (a new window if the old one ran out); the new count."""
    return db.execute_alone(_COUNT_IN_WINDOW[db.dialect.name],
                      {"k": key, "amount": amount, "now": now, "expires": expires_at}).scalar_one()


def uncount_in_window(db: Tx, key: str, *, amount: int, now: datetime) -> int:
    """Lower a live window's count (never below zero); 0 when there is no live window."""
    return db.execute_alone(_UNCOUNT, {"k": key, "amount": amount, "now": now}).scalar() or 0


def rate_window(db: Tx, key: str, now: datetime) -> WindowRow | None:
    return first(db, _WINDOW, {"k": key, "now": now}, WindowRow)


def clear_window(db: Tx, key: str) -> None:
    db.execute(delete(windows).where(windows.c.key == key))


def clear_windows(db: Tx) -> int:
    return db.execute(delete(windows)).rowcount


def delete_expired_windows(db: Tx, now: datetime) -> int:
    return db.execute(delete(windows).where(windows.c.expires_at <= now)).rowcount
