"""The queries of the mail outbox: messages queued in the transaction of what they report, claimed
and marked by the mail sender (mail.py). Functions take the caller's `db` (see db.Database.run)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, bindparam, delete, func, insert, select, update

from .db import Tx
from .rows import ClaimedMail
from .store import tables
from .store_batch import Writer

outbox: Table = tables["mail_outbox"]
_p = bindparam

_ENQUEUE = insert(outbox)
_DUE = (select(outbox.c.id).where(outbox.c.sent_at.is_(None), outbox.c.next_attempt_at <= _p("now"),
                                  outbox.c.claimed_until.is_(None) | (outbox.c.claimed_until < _p("now")))
        .order_by(outbox.c.id).limit(_p("limit")))
_CLAIM = (update(outbox)
          .where(outbox.c.id.in_(_DUE.scalar_subquery()),
                 # Checked again on the row itself: on PostgreSQL a second sender that chose the same
                 # rows waits for the first one's row locks, then finds them claimed and skips them.
                 outbox.c.claimed_until.is_(None) | (outbox.c.claimed_until < _p("now")))
          .values(claimed_until=_p("until"), claim_token=_p("token"))
          .returning(outbox.c.id, outbox.c.to_addr, outbox.c.message, outbox.c.attempts))


def enqueue_mail(db: Writer, *, kind: str, to_addr: str, message: str, when: datetime) -> None:
    db.execute(_ENQUEUE, {"kind": kind, "to_addr": to_addr, "message": message, "created_at": when,
                          "next_attempt_at": when, "attempts": 0})


def claim_mail(db: Tx, *, now: datetime, until: datetime, token: str, limit: int) -> list[ClaimedMail]:
    """Take up to `limit` due messages for this sender, oldest first; another sender skips them
    until `until`. One statement: on SQLite the mail worker holds the write lock, which the web
    process's logins wait for, only as long as that statement takes."""
    rows = db.execute_alone(_CLAIM, {"now": now, "until": until, "token": token, "limit": limit})
    return sorted((ClaimedMail(*row) for row in rows), key=lambda mail: mail.id)  # RETURNING promises no order


def mark_mail_sent(db: Tx, ids: list[int], when: datetime) -> None:
    if ids:
        db.execute(update(outbox).where(outbox.c.id.in_(ids)).values(sent_at=when, claimed_until=None))


def delete_sent_mail(db: Tx, sent_before: datetime) -> int:
    """The outbox is a queue, not an archive (security events are the record of what happened)."""
    return db.execute(delete(outbox).where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < sent_before)).rowcount


def mark_mail_failed(db: Tx, mail_id: int, *, retry_at: datetime, error: str) -> None:
    db.execute(update(outbox).where(outbox.c.id == mail_id)
               .values(attempts=outbox.c.attempts + 1, next_attempt_at=retry_at, claimed_until=None,
                       last_error=error[:300]))


def pending_mail_count(db: Tx) -> int:
    return db.read(select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))).scalar_one()


def unsent_summary(db: Tx) -> tuple[int, datetime | None]:
    """(how many mails wait, when the oldest was queued): what /metrics shows of the outbox."""
    count, oldest = db.read(select(func.count(), func.min(outbox.c.created_at))  # min keeps the column's type
                            .where(outbox.c.sent_at.is_(None))).one()
    return count, oldest
