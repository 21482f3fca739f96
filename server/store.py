"""Every query Tobira makes. Functions take an open `Db` (one transaction, see db.Database)."""

from __future__ import annotations

import functools
import json
import re
from typing import Callable
from datetime import datetime, timezone
from types import SimpleNamespace

from sqlalchemy import Boolean, LargeBinary, delete, func, or_, select, update
from sqlmodel import Session as Db

from .db import Tx
from .models import (Ceremony, Credential, OneTimeCode, OutboxMail, RateLimitWindow, SecurityEvent, Session,
                     TrustedDevice, User, UTCDateTime, as_utc)


# --- plain SQL for the login path ------------------------------------------------------------
# Every login, every page and every other service's session check runs these. Through the ORM
# each statement cost 150-400 microseconds of Python (and building a model object 100 more): on
# the benchmark (bench/) that was most of the server's time, against about 5 for the statement in
# SQLite itself. So they are plain DB-API SQL on the transaction's own connection (one
# transaction, one rollback, as everywhere), and their rows come back as `Plain` objects: the
# table's column names as attributes, the same Python types the models give.


class Plain(SimpleNamespace):
    """A row as attributes (readable and settable), without the ORM's bookkeeping."""


@functools.lru_cache(maxsize=None)
def _kinds(table) -> tuple[frozenset, frozenset]:
    dates = frozenset(c.name for c in table.columns if isinstance(c.type, UTCDateTime))
    flags = frozenset(c.name for c in table.columns if isinstance(c.type, Boolean))
    return dates, flags


@functools.lru_cache(maxsize=512)
def _for_postgresql(sql: str) -> str:
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)


def _sqlite_text(value: datetime) -> str:
    # SQLAlchemy's own storage format for DATETIME on SQLite (so its queries compare the same):
    # "YYYY-MM-DD HH:MM:SS.ffffff" in UTC (isoformat: a third of strftime's cost).
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def _execute(db: Db | Tx, sql: str, params: dict | None = None):
    """Run plain SQL (`:name` parameters) in `db`'s transaction: a Tx (Database.run_plain) or an ORM
    session, whose own connection it borrows (SQLite: BEGIN IMMEDIATE done)."""
    if isinstance(db, Tx):
        tx = db
    else:
        connection = db.connection()
        tx = Tx(connection.connection, connection.dialect, invalidate=connection.invalidate)
    if tx.dialect.name == "postgresql":
        return tx.execute(_for_postgresql(sql), params or {})
    if params:
        params = {k: _sqlite_text(v) if type(v) is datetime else v for k, v in params.items()}
    return tx.execute(sql, params)


def _as_utc_datetime(value):
    # SQLite hands back its text, PostgreSQL a datetime.
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _bytes(value):
    return value.tobytes() if isinstance(value, memoryview) else value


@functools.lru_cache(maxsize=256)
def _row_plan(table, names: tuple[str, ...]) -> tuple[tuple[int, Callable], ...]:
    """For rows of these columns: which values need converting to the models' Python types, and how."""
    dates, flags = _kinds(table)
    plan = []
    for i, name in enumerate(names):
        if name in dates:
            plan.append((i, _as_utc_datetime))
        elif name in flags:
            plan.append((i, bool))
        elif name not in table.columns or isinstance(table.columns[name].type, LargeBinary):
            plan.append((i, _bytes))  # psycopg may hand back a memoryview
    return tuple(plan)


# The column names of each statement's rows, read from the cursor once: psycopg builds a fresh
# description object per column every time it is asked (a third of a PostgreSQL statement's Python).
_names_of: dict[str, tuple[str, ...]] = {}


def _plain(table, sql: str, cursor, row) -> Plain | None:
    if row is None:
        return None
    names = _names_of.get(sql)
    if names is None or len(names) != len(row):  # new, or the table changed under a running server
        names = _names_of[sql] = tuple(column[0] for column in cursor.description)
    return _converted(table, names, row)


def _converted(table, names: tuple[str, ...], row) -> Plain:
    values = list(row)
    for i, convert in _row_plan(table, names):
        if values[i] is not None:
            values[i] = convert(values[i])
    return Plain(**dict(zip(names, values)))


def _one(db: Db, model, sql: str, params: dict) -> Plain | None:
    cursor = _execute(db, sql, params)
    return _plain(model.__table__, sql, cursor, cursor.fetchone())


def _fields(row) -> dict:
    """The column values of a model object or a Plain."""
    return {k: v for k, v in vars(row).items() if not k.startswith("_")}


@functools.lru_cache(maxsize=256)
def _insert_sql(table_name: str, names: tuple[str, ...]) -> str:
    return f"INSERT INTO {table_name} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"


def _insert(db: Db, model, values: dict) -> Plain:
    """INSERT one row of `model` (None values are left to the column default); returns it as Plain."""
    given = {k: v for k, v in values.items() if v is not None}
    _execute(db, _insert_sql(model.__tablename__, tuple(given)), given)
    return Plain(**values)


# --- users ---------------------------------------------------------------------------------


def add_user(db: Db, user: User) -> User:
    db.add(user)
    db.flush()
    return user


def user_by_code(db: Db, customer_code: str) -> Plain | None:
    return _one(db, User, "SELECT * FROM users WHERE customer_code = :code", {"code": customer_code})


def user_by_id(db: Db, user_id: int) -> Plain | None:
    return _one(db, User, "SELECT * FROM users WHERE id = :id", {"id": user_id})


def count_users(db: Db) -> int:
    return db.exec(select(func.count()).select_from(User)).scalar_one()


def add_failed_login(db: Db, user_id: int) -> int:
    """Count one failure atomically (parallel wrong guesses all count); returns the new total."""
    stmt = update(User).where(User.id == user_id).values(failed_logins=User.failed_logins + 1)
    return db.exec(stmt.returning(User.failed_logins)).scalar_one()


def lock_user(db: Db, user_id: int, when: datetime) -> bool:
    """Lock once; True only for the call that actually locked (so one lock e-mail is sent)."""
    stmt = update(User).where(User.id == user_id, User.locked_at.is_(None)).values(locked_at=when)
    return db.exec(stmt).rowcount == 1


def record_login(db: Db, user_id: int, when: datetime, *, unless_locked: bool = False) -> bool:
    """Reset the failure count and note the login. unless_locked: only while neither lock is set,
    read as the row is written (False when a lock came first: the password path then lets no one in)."""
    sql = "UPDATE users SET failed_logins = 0, last_login_at = :when WHERE id = :id"
    if unless_locked:
        sql += " AND locked_at IS NULL AND held_at IS NULL"
    return _execute(db, sql, {"when": when, "id": user_id}).rowcount == 1


def give_back_failure(db: Db, user_id: int) -> bool:
    """A password attempt counted in advance (add_failed_login) was right: take its count back.
    False, and nothing changed, when the account was locked meanwhile."""
    return _execute(db, "UPDATE users SET failed_logins = CASE WHEN failed_logins > 0 THEN failed_logins - 1"
                        " ELSE 0 END WHERE id = :id AND locked_at IS NULL AND held_at IS NULL",
                    {"id": user_id}).rowcount == 1


def unlock_user(db: Db, user_id: int) -> None:
    """Lift both locks (the automatic one and the support desk's hold)."""
    db.exec(update(User).where(User.id == user_id).values(failed_logins=0, locked_at=None, held_at=None,
                                                          hold_reason=None))


def unlock_password(db: Db, user_id: int) -> bool:
    """Lift the automatic lock only; True when it was set."""
    stmt = update(User).where(User.id == user_id, User.locked_at.is_not(None)).values(failed_logins=0, locked_at=None)
    return db.exec(stmt).rowcount == 1


def hold_user(db: Db, user_id: int, when: datetime, reason: str | None) -> None:
    db.exec(update(User).where(User.id == user_id).values(held_at=when, hold_reason=reason))


def lock_user_row(db: Db, user_id: int) -> None:
    """Serialise work on one customer (e.g. the passkey limit under parallel registrations).

    PostgreSQL: a row lock until commit. SQLite: every write transaction already starts with
    BEGIN IMMEDIATE (db.py), which serialises all writers, so there is nothing more to take.
    """
    if db.bind.dialect.name == "postgresql":
        db.exec(select(User.id).where(User.id == user_id).with_for_update())


def set_email(db: Db, user_id: int, email: str) -> None:
    db.exec(update(User).where(User.id == user_id).values(email=email))


# --- sessions ------------------------------------------------------------------------------


def add_session(db: Db, session) -> Plain:
    return _insert(db, Session, _fields(session))


def session_by_hash(db: Db, id_hash: str) -> Plain | None:
    return _one(db, Session, "SELECT * FROM sessions WHERE id_hash = :h", {"h": id_hash})


def session_with_customer(db: Db, id_hash: str) -> Plain | None:
    """The session plus its customer's code, name and passkey count, in one statement (what
    /api/session answers: every page and every other service asks it)."""
    return _one(db, Session, "SELECT s.*, u.customer_code, u.display_name, (SELECT count(*) FROM credentials c"
                             " WHERE c.user_id = s.user_id) AS passkey_count FROM sessions s"
                             " LEFT JOIN users u ON u.id = s.user_id WHERE s.id_hash = :h", {"h": id_hash})


def delete_session(db: Db, id_hash: str) -> bool:
    return _execute(db, "DELETE FROM sessions WHERE id_hash = :h", {"h": id_hash}).rowcount == 1


def end_session_for_next(db: Db, id_hash: str) -> str | None:
    """Delete the session and hand back where it was headed (its next_path), in one statement."""
    row = _execute(db, "DELETE FROM sessions WHERE id_hash = :h RETURNING next_path", {"h": id_hash}).fetchone()
    return row[0] if row else None


def touch_session(db: Db, id_hash: str, when: datetime) -> None:
    _execute(db, "UPDATE sessions SET last_seen_at = :when WHERE id_hash = :h", {"when": when, "h": id_hash})


def delete_user_sessions(db: Db, user_id: int) -> int:
    return db.exec(delete(Session).where(Session.user_id == user_id)).rowcount


def delete_stale_sessions(db: Db, *, idle_before: datetime, created_before: datetime) -> int:
    stmt = delete(Session).where(or_(Session.last_seen_at < idle_before, Session.created_at < created_before))
    return db.exec(stmt).rowcount


# --- one-time codes ------------------------------------------------------------------------


def replace_code(db: Db, code: OneTimeCode) -> OneTimeCode:
    """Store a new code; the old one for the same session and purpose stops working."""
    db.exec(
        delete(OneTimeCode).where(
            OneTimeCode.session_id_hash == code.session_id_hash, OneTimeCode.purpose == code.purpose
        )
    )
    db.add(code)
    db.flush()
    return code


def code_for(db: Db, session_id_hash: str, purpose: str) -> OneTimeCode | None:
    stmt = select(OneTimeCode).where(
        OneTimeCode.session_id_hash == session_id_hash, OneTimeCode.purpose == purpose
    )
    return db.exec(stmt.with_for_update()).scalars().first()


def add_wrong_attempt(db: Db, code_id: int) -> int:
    stmt = update(OneTimeCode).where(OneTimeCode.id == code_id).values(wrong_attempts=OneTimeCode.wrong_attempts + 1)
    return db.exec(stmt.returning(OneTimeCode.wrong_attempts)).scalar_one()


def delete_code(db: Db, code_id: int) -> bool:
    """True only for the caller that removed it: a code is used at most once."""
    return db.exec(delete(OneTimeCode).where(OneTimeCode.id == code_id)).rowcount == 1


# --- trusted devices -----------------------------------------------------------------------


def add_trusted_device(db: Db, device: TrustedDevice) -> TrustedDevice:
    db.add(device)
    db.flush()
    return device


def trusted_device(db: Db, token_hash: str, user_id: int, now: datetime) -> TrustedDevice | None:
    stmt = select(TrustedDevice).where(
        TrustedDevice.token_hash == token_hash, TrustedDevice.user_id == user_id, TrustedDevice.expires_at > now
    )
    return db.exec(stmt).scalars().first()


def use_trusted_device(db: Db, device_id: int, when: datetime) -> None:
    db.exec(update(TrustedDevice).where(TrustedDevice.id == device_id).values(last_used_at=when))


def trusted_devices_of(db: Db, user_id: int) -> list[TrustedDevice]:
    return list(db.exec(select(TrustedDevice).where(TrustedDevice.user_id == user_id)).scalars())


def forget_trusted_devices(db: Db, user_id: int) -> int:
    return db.exec(delete(TrustedDevice).where(TrustedDevice.user_id == user_id)).rowcount


# --- security events -----------------------------------------------------------------------


def add_event(
    db: Db, *, kind: str, when: datetime, user_id: int | None, ip: str | None = None,
    user_agent: str | None = None, **detail
) -> Plain:
    event = _insert(db, SecurityEvent, dict(
        kind=kind, created_at=when, user_id=user_id, ip=ip, user_agent=(user_agent or None) and user_agent[:300],
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
    ))
    # Logged by Database.run_sync once the transaction commits: a rolled-back event never happened.
    db.info.setdefault("events", []).append(event)
    return event


def events_of(db: Db, user_id: int, *, newest_first: bool = False, limit: int | None = None) -> list[SecurityEvent]:
    order = SecurityEvent.id.desc() if newest_first else SecurityEvent.id
    stmt = select(SecurityEvent).where(SecurityEvent.user_id == user_id).order_by(order).limit(limit)
    return list(db.exec(stmt).scalars())


# --- mail outbox ---------------------------------------------------------------------------


def enqueue_mail(db: Db, *, kind: str, to_addr: str, message: str, when: datetime) -> None:
    _insert(db, OutboxMail, dict(kind=kind, to_addr=to_addr, message=message, created_at=when, next_attempt_at=when,
                                 attempts=0))


_CLAIM_SQL = (
    "UPDATE mail_outbox SET claimed_until = :until, claim_token = :token"
    " WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= :now"
    " AND (claimed_until IS NULL OR claimed_until < :now) ORDER BY id LIMIT :limit)"
    # Checked again on the row itself: on PostgreSQL a second sender that chose the same rows waits
    # for the first one's row locks, then finds them claimed and skips them.
    " AND (claimed_until IS NULL OR claimed_until < :now)"
    " RETURNING id, to_addr, message, attempts")


def claim_mail(db: Db, *, now: datetime, until: datetime, token: str, limit: int) -> list[Plain]:
    """Take up to `limit` due messages for this sender, oldest first; another sender skips them
    until `until`. One statement: on SQLite the mail worker holds the write lock, which the web
    process's logins wait for, only as long as that statement takes."""
    cursor = _execute(db, _CLAIM_SQL, {"now": now, "until": until, "token": token, "limit": limit})
    rows = [_plain(OutboxMail.__table__, _CLAIM_SQL, cursor, row) for row in cursor.fetchall()]
    return sorted(rows, key=lambda row: row.id)  # RETURNING promises no order


def mark_mail_sent(db: Db, ids: list[int], when: datetime) -> None:
    if ids:
        marks = {f"id{i}": mail_id for i, mail_id in enumerate(ids)}
        _execute(db, f"UPDATE mail_outbox SET sent_at = :when, claimed_until = NULL"
                     f" WHERE id IN ({', '.join(':' + k for k in marks)})", {"when": when, **marks})


def delete_sent_mail(db: Db, sent_before: datetime) -> int:
    """The outbox is a queue, not an archive (security events are the record of what happened)."""
    return db.exec(delete(OutboxMail).where(OutboxMail.sent_at.is_not(None), OutboxMail.sent_at < sent_before)).rowcount


def mark_mail_failed(db: Db, mail_id: int, *, retry_at: datetime, error: str) -> None:
    db.exec(
        update(OutboxMail)
        .where(OutboxMail.id == mail_id)
        .values(attempts=OutboxMail.attempts + 1, next_attempt_at=retry_at, claimed_until=None, last_error=error[:300])
    )


def pending_mail_count(db: Db) -> int:
    return db.exec(select(func.count()).select_from(OutboxMail).where(OutboxMail.sent_at.is_(None))).scalar_one()


# --- rate-limit windows --------------------------------------------------------------------


def count_in_window(db: Db, key: str, *, amount: int, now: datetime, expires_at: datetime) -> int:
    """Add to a window's count in one statement (a new window if the old one ran out); the new count.
    (In SET, rate_limits.expires_at is the row's old value, in SQLite and PostgreSQL alike.)"""
    return _execute(db, "INSERT INTO rate_limits (key, count, expires_at) VALUES (:key, :amount, :expires)"
                        " ON CONFLICT (key) DO UPDATE SET"
                        " count = CASE WHEN rate_limits.expires_at <= :now THEN :amount"
                        " ELSE rate_limits.count + :amount END,"
                        " expires_at = CASE WHEN rate_limits.expires_at <= :now THEN :expires"
                        " ELSE rate_limits.expires_at END RETURNING count",
                    {"key": key, "amount": amount, "now": now, "expires": expires_at}).fetchone()[0]


def uncount_in_window(db: Db, key: str, *, amount: int, now: datetime) -> int:
    """Lower a live window's count (never below zero); 0 when there is no live window."""
    row = _execute(db, "UPDATE rate_limits SET count = CASE WHEN count > :amount THEN count - :amount ELSE 0 END"
                       " WHERE key = :key AND expires_at > :now RETURNING count",
                   {"key": key, "amount": amount, "now": now}).fetchone()
    return row[0] if row else 0


def rate_window(db: Db, key: str, now: datetime) -> Plain | None:
    row = _one(db, RateLimitWindow, "SELECT * FROM rate_limits WHERE key = :key", {"key": key})
    return row if row is not None and row.expires_at > now else None


def clear_window(db: Db, key: str) -> None:
    db.exec(delete(RateLimitWindow).where(RateLimitWindow.key == key))


def clear_windows(db: Db) -> int:
    return db.exec(delete(RateLimitWindow)).rowcount


def delete_expired_windows(db: Db, now: datetime) -> int:
    return db.exec(delete(RateLimitWindow).where(RateLimitWindow.expires_at <= now)).rowcount


# --- ceremonies ----------------------------------------------------------------------------


def add_ceremony(db: Db, ceremony) -> None:
    _insert(db, Ceremony, _fields(ceremony))


def take_ceremony(db: Db, *, challenge_hash: str, session_id_hash: str, kind: str) -> Plain | None:
    """Delete the ceremony as it is read: of any number of parallel callers, one gets it."""
    return _one(db, Ceremony, "DELETE FROM ceremonies WHERE challenge_hash = :c AND session_id_hash = :s"
                              " AND kind = :k RETURNING *", {"c": challenge_hash, "s": session_id_hash, "k": kind})


def delete_expired_ceremonies(db: Db, now: datetime) -> int:
    return db.exec(delete(Ceremony).where(Ceremony.expires_at <= now)).rowcount


def keep_newest_ceremonies(db: Db, *, session_id_hash: str, kind: str, keep: int) -> int:
    """Delete this session's ceremonies of this kind but its `keep` newest, in one statement."""
    return _execute(db, "DELETE FROM ceremonies WHERE session_id_hash = :s AND kind = :k AND challenge_hash NOT IN"
                        " (SELECT challenge_hash FROM ceremonies WHERE session_id_hash = :s AND kind = :k"
                        " ORDER BY expires_at DESC LIMIT :n)", {"s": session_id_hash, "k": kind, "n": keep}).rowcount


# --- credentials (passkeys) ----------------------------------------------------------------


def credentials_of(db: Db, user_id: int) -> list[Credential]:
    stmt = select(Credential).where(Credential.user_id == user_id).order_by(Credential.created_at, Credential.id)
    return list(db.exec(stmt).scalars())


def count_credentials(db: Db, user_id: int) -> int:
    return _execute(db, "SELECT count(*) FROM credentials WHERE user_id = :u", {"u": user_id}).fetchone()[0]


def credential_by_raw_id(db: Db, credential_id: bytes) -> Plain | None:
    return _one(db, Credential, "SELECT * FROM credentials WHERE credential_id = :c", {"c": credential_id})


@functools.cache
def _credential_with_owner_sql() -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Both tables' columns named one by one, so the row splits exactly: (SQL, passkey's, owner's)."""
    credential = tuple(c.name for c in Credential.__table__.columns)
    user = tuple(c.name for c in User.__table__.columns)
    columns = [f"c.{name}" for name in credential] + [f"u.{name}" for name in user]
    return (f"SELECT {', '.join(columns)} FROM credentials c JOIN users u ON u.id = c.user_id"
            " WHERE c.credential_id = :c", credential, user)


def credential_with_owner(db: Db, credential_id: bytes) -> tuple[Plain | None, Plain | None]:
    """(the owner, the passkey) of a credential ID, in one statement; (None, None) when unknown."""
    sql, credential, user = _credential_with_owner_sql()
    row = _execute(db, sql, {"c": credential_id}).fetchone()
    if row is None:
        return None, None
    split = len(credential)
    return (_converted(User.__table__, user, row[split:]),
            _converted(Credential.__table__, credential, row[:split]))


def add_credential(db: Db, credential: Credential) -> Credential:
    db.add(credential)
    db.flush()
    return credential


def record_credential_use(db: Db, credential_pk: int, *, old_count: int, new_count: int, backup_state: bool,
                          when: datetime) -> bool:
    """Compare-and-set: False when another login moved the sign counter first (security.md §12)."""
    return _execute(db, "UPDATE credentials SET sign_count = :new, backup_state = :bs, last_used_at = :when"
                        " WHERE id = :id AND sign_count = :old",
                    {"new": new_count, "bs": backup_state, "when": when, "id": credential_pk,
                     "old": old_count}).rowcount == 1


def rename_credential(db: Db, user_id: int, credential_id: bytes, name: str) -> Credential | None:
    row = db.exec(select(Credential).where(Credential.user_id == user_id,
                                           Credential.credential_id == credential_id)).scalars().first()
    if row is not None:
        row.name = name
        db.add(row)
        db.flush()
    return row


def delete_credential(db: Db, user_id: int, credential_id: bytes) -> Credential | None:
    stmt = (delete(Credential)
            .where(Credential.user_id == user_id, Credential.credential_id == credential_id)
            .returning(Credential))
    return db.exec(stmt).scalars().first()


def release_passkey_holds(db: Db, user_id: int, now: datetime) -> int:
    """End the holds on the customer's passkeys, and on the sessions and step-ups made with them;
    how many passkeys were still on hold."""
    released = db.exec(update(Credential).where(Credential.user_id == user_id, Credential.hold_until > now)
                       .values(hold_until=None)).rowcount
    db.exec(update(Session).where(Session.user_id == user_id).values(login_hold_until=None, verified_hold_until=None))
    return released


def delete_credentials_of(db: Db, user_id: int) -> int:
    return db.exec(delete(Credential).where(Credential.user_id == user_id)).rowcount
