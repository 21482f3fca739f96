"""Every query Tobira makes, in SQLAlchemy Core, inside the caller's transaction (`db: Tx`, see
db.Database.run). Reads come back as the frozen rows of rows.py.

The statements are built once, at import, with named parameters: each call only binds values,
and SQLAlchemy's compiled cache does the rest (the login path runs these on every request).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, func, insert, select, update
from sqlmodel import SQLModel

from . import models  # noqa: F401 -- declares the tables read below
from .db import Tx
from .rows import (CeremonyRow, ClaimedMail, CodeRow, CredentialRow, CustomerSession, DeviceRow, EventRow,
                   SessionRow, UserRow, WindowRow)

_tables = SQLModel.metadata.tables
users: Table = _tables["users"]
sessions: Table = _tables["sessions"]
codes: Table = _tables["one_time_codes"]
devices: Table = _tables["trusted_devices"]
events: Table = _tables["security_events"]
outbox: Table = _tables["mail_outbox"]
windows: Table = _tables["rate_limits"]
credentials: Table = _tables["credentials"]
ceremonies: Table = _tables["ceremonies"]

_p = bindparam


def _first(db: Tx, statement, params: dict[str, Any], row_type):
    row = db.execute(statement, params).first()
    return None if row is None else row_type(*row)


# --- users ---------------------------------------------------------------------------------

_ADD_USER = insert(users).returning(*users.c)
_USER_BY_CODE = select(users).where(users.c.customer_code == _p("code"))
_USER_BY_ID = select(users).where(users.c.id == _p("uid"))
_FAILED = (update(users).where(users.c.id == _p("uid")).values(failed_logins=users.c.failed_logins + 1)
           .returning(users.c.failed_logins))
_LOCK = update(users).where(users.c.id == _p("uid"), users.c.locked_at.is_(None)).values(locked_at=_p("when"))
_RECORD_LOGIN = update(users).where(users.c.id == _p("uid")).values(failed_logins=0, last_login_at=_p("when"))
_RECORD_LOGIN_UNLESS_LOCKED = _RECORD_LOGIN.where(users.c.locked_at.is_(None), users.c.held_at.is_(None))
_GIVE_BACK = (update(users).where(users.c.id == _p("uid"), users.c.locked_at.is_(None), users.c.held_at.is_(None))
              .values(failed_logins=case((users.c.failed_logins > 0, users.c.failed_logins - 1), else_=0)))


def add_user(db: Tx, *, customer_code: str, display_name: str, email: str | None, password_hash: str,
             user_handle: bytes, created_at: datetime) -> UserRow:
    """A new customer (IntegrityError when the code or handle is taken: the UNIQUE index decides races)."""
    return UserRow(*db.execute(_ADD_USER, {
        "customer_code": customer_code, "display_name": display_name, "email": email,
        "password_hash": password_hash, "user_handle": user_handle, "created_at": created_at}).one())


def user_by_code(db: Tx, customer_code: str) -> UserRow | None:
    return _first(db, _USER_BY_CODE, {"code": customer_code}, UserRow)


def user_by_id(db: Tx, user_id: int) -> UserRow | None:
    return _first(db, _USER_BY_ID, {"uid": user_id}, UserRow)


def count_users(db: Tx) -> int:
    return db.execute(select(func.count()).select_from(users)).scalar_one()


def add_failed_login(db: Tx, user_id: int) -> int:
    """Count one failure atomically (parallel wrong guesses all count); returns the new total."""
    return db.execute(_FAILED, {"uid": user_id}).scalar_one()


def lock_user(db: Tx, user_id: int, when: datetime) -> bool:
    """Lock once; True only for the call that actually locked (so one lock e-mail is sent)."""
    return db.execute(_LOCK, {"uid": user_id, "when": when}).rowcount == 1


def record_login(db: Tx, user_id: int, when: datetime, *, unless_locked: bool = False) -> bool:
    """Reset the failure count and note the login. unless_locked: only while neither lock is set,
    read as the row is written (False when a lock came first: the password path then lets no one in)."""
    statement = _RECORD_LOGIN_UNLESS_LOCKED if unless_locked else _RECORD_LOGIN
    return db.execute(statement, {"uid": user_id, "when": when}).rowcount == 1


def give_back_failure(db: Tx, user_id: int) -> bool:
    """A password attempt counted in advance (add_failed_login) was right: take its count back.
    False, and nothing changed, when the account was locked meanwhile."""
    return db.execute(_GIVE_BACK, {"uid": user_id}).rowcount == 1


def unlock_user(db: Tx, user_id: int) -> None:
    """Lift both locks (the automatic one and the support desk's hold)."""
    db.execute(update(users).where(users.c.id == user_id)
               .values(failed_logins=0, locked_at=None, held_at=None, hold_reason=None))


def unlock_password(db: Tx, user_id: int) -> bool:
    """Lift the automatic lock only; True when it was set."""
    return db.execute(update(users).where(users.c.id == user_id, users.c.locked_at.is_not(None))
                      .values(failed_logins=0, locked_at=None)).rowcount == 1


def hold_user(db: Tx, user_id: int, when: datetime, reason: str | None) -> None:
    db.execute(update(users).where(users.c.id == user_id).values(held_at=when, hold_reason=reason))


def lock_user_row(db: Tx, user_id: int) -> None:
    """Serialise work on one customer (e.g. the passkey limit under parallel registrations).

    PostgreSQL: a row lock until commit. SQLite: every write transaction already starts with
    BEGIN IMMEDIATE (db.py), which serialises all writers, so there is nothing more to take.
    """
    if db.dialect.name == "postgresql":
        db.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())


def set_email(db: Tx, user_id: int, email: str) -> None:
    db.execute(update(users).where(users.c.id == user_id).values(email=email))


# --- sessions ------------------------------------------------------------------------------

_ADD_SESSION = insert(sessions)
_SESSION_BY_HASH = select(sessions).where(sessions.c.id_hash == _p("h"))
_PASSKEY_COUNT = (select(func.count()).select_from(credentials).where(credentials.c.user_id == sessions.c.user_id)
                  .scalar_subquery())
_SESSION_WITH_CUSTOMER = (select(sessions, users.c.customer_code, users.c.display_name, _PASSKEY_COUNT)
                          .join_from(sessions, users, users.c.id == sessions.c.user_id)
                          .where(sessions.c.id_hash == _p("h")))
_DELETE_SESSION = delete(sessions).where(sessions.c.id_hash == _p("h"))
_END_FOR_NEXT = _DELETE_SESSION.returning(sessions.c.next_path)
_TOUCH = update(sessions).where(sessions.c.id_hash == _p("h")).values(last_seen_at=_p("when"))


def add_session(db: Tx, session: SessionRow) -> SessionRow:
    db.execute(_ADD_SESSION, _values(session))
    return session


def session_by_hash(db: Tx, id_hash: str) -> SessionRow | None:
    return _first(db, _SESSION_BY_HASH, {"h": id_hash}, SessionRow)


def session_with_customer(db: Tx, id_hash: str) -> CustomerSession | None:
    """The session of a customer, with their code, name and passkey count, in one statement (what
    /api/session answers: every page and every other service asks it). None for a session without one."""
    row = db.execute(_SESSION_WITH_CUSTOMER, {"h": id_hash}).first()
    if row is None:
        return None
    *session, code, name, count = row
    return CustomerSession(SessionRow(*session), code, name, count)


def delete_session(db: Tx, id_hash: str) -> bool:
    return db.execute(_DELETE_SESSION, {"h": id_hash}).rowcount == 1


def end_session_for_next(db: Tx, id_hash: str) -> str | None:
    """Delete the session and hand back where it was headed (its next_path), in one statement."""
    row = db.execute(_END_FOR_NEXT, {"h": id_hash}).first()
    return row[0] if row else None


def touch_session(db: Tx, id_hash: str, when: datetime) -> None:
    db.execute(_TOUCH, {"h": id_hash, "when": when})


def delete_user_sessions(db: Tx, user_id: int) -> int:
    return db.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount


def delete_stale_sessions(db: Tx, *, idle_before: datetime, created_before: datetime) -> int:
    return db.execute(delete(sessions).where((sessions.c.last_seen_at < idle_before)
                                             | (sessions.c.created_at < created_before))).rowcount


# --- one-time codes ------------------------------------------------------------------------

_CODE_FOR = select(codes).where(codes.c.session_id_hash == _p("s"), codes.c.purpose == _p("p")).with_for_update()


def replace_code(db: Tx, *, session_id_hash: str, user_id: int, purpose: str, code_hash: str, sent_at: datetime,
                 expires_at: datetime) -> None:
    """Store a new code; the old one for the same session and purpose stops working."""
    db.execute(delete(codes).where(codes.c.session_id_hash == session_id_hash, codes.c.purpose == purpose))
    db.execute(insert(codes).values(session_id_hash=session_id_hash, user_id=user_id, purpose=purpose,
                                    code_hash=code_hash, sent_at=sent_at, expires_at=expires_at, wrong_attempts=0))


def code_for(db: Tx, session_id_hash: str, purpose: str) -> CodeRow | None:
    return _first(db, _CODE_FOR, {"s": session_id_hash, "p": purpose}, CodeRow)


def add_wrong_attempt(db: Tx, code_id: int) -> int:
    return db.execute(update(codes).where(codes.c.id == code_id)
                      .values(wrong_attempts=codes.c.wrong_attempts + 1).returning(codes.c.wrong_attempts)).scalar_one()


def delete_code(db: Tx, code_id: int) -> bool:
    """True only for the caller that removed it: a code is used at most once."""
    return db.execute(delete(codes).where(codes.c.id == code_id)).rowcount == 1


# --- trusted devices (remembered PCs) ------------------------------------------------------


def add_trusted_device(db: Tx, *, user_id: int, token_hash: str, created_at: datetime, expires_at: datetime,
                       user_agent: str | None) -> None:
    db.execute(insert(devices).values(user_id=user_id, token_hash=token_hash, created_at=created_at,
                                      expires_at=expires_at, user_agent=user_agent))


def trusted_device(db: Tx, token_hash: str, user_id: int, now: datetime) -> DeviceRow | None:
    return _first(db, select(devices).where(devices.c.token_hash == token_hash, devices.c.user_id == user_id,
                                            devices.c.expires_at > now), {}, DeviceRow)


def use_trusted_device(db: Tx, device_id: int, when: datetime) -> None:
    db.execute(update(devices).where(devices.c.id == device_id).values(last_used_at=when))


def trusted_devices_of(db: Tx, user_id: int) -> list[DeviceRow]:
    return [DeviceRow(*row) for row in db.execute(select(devices).where(devices.c.user_id == user_id)
                                                  .order_by(devices.c.id))]


def forget_trusted_devices(db: Tx, user_id: int) -> int:
    return db.execute(delete(devices).where(devices.c.user_id == user_id)).rowcount


# --- security events -----------------------------------------------------------------------

_ADD_EVENT = insert(events)


def add_event(db: Tx, *, kind: str, when: datetime, user_id: int | None, ip: str | None = None,
              user_agent: str | None = None, **detail) -> EventRow:
    event = EventRow(id=None, kind=kind, created_at=when, user_id=user_id, ip=ip,
                     user_agent=(user_agent or None) and user_agent[:300],
                     detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None)
    db.execute(_ADD_EVENT, _values(event, skip=("id",)))
    # Logged by Database.run once the transaction commits: a rolled-back event never happened.
    db.info.setdefault("events", []).append(event)
    return event


def events_of(db: Tx, user_id: int, *, newest_first: bool = False, limit: int | None = None) -> list[EventRow]:
    order = events.c.id.desc() if newest_first else events.c.id
    statement = select(events).where(events.c.user_id == user_id).order_by(order).limit(limit)
    return [EventRow(*row) for row in db.execute(statement)]


# --- mail outbox ---------------------------------------------------------------------------

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


def enqueue_mail(db: Tx, *, kind: str, to_addr: str, message: str, when: datetime) -> None:
    db.execute(_ENQUEUE, {"kind": kind, "to_addr": to_addr, "message": message, "created_at": when,
                          "next_attempt_at": when, "attempts": 0})


def claim_mail(db: Tx, *, now: datetime, until: datetime, token: str, limit: int) -> list[ClaimedMail]:
    """Take up to `limit` due messages for this sender, oldest first; another sender skips them
    until `until`. One statement: on SQLite the mail worker holds the write lock, which the web
    process's logins wait for, only as long as that statement takes."""
    rows = db.execute(_CLAIM, {"now": now, "until": until, "token": token, "limit": limit})
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
    return db.execute(select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))).scalar_one()


# --- rate-limit windows --------------------------------------------------------------------

def _count_in_window_statement(dialect: str):
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(windows).values(
        key=_p("k"), count=_p("amount"), expires_at=_p("expires"))
    # In SET, rate_limits.* is the row's old value (excluded.* the one offered), in both databases.
    ended = windows.c.expires_at <= _p("now")
    return upsert.on_conflict_do_update(index_elements=[windows.c.key], set_={
        "count": case((ended, upsert.excluded["count"]), else_=windows.c.count + upsert.excluded["count"]),
        "expires_at": case((ended, upsert.excluded.expires_at), else_=windows.c.expires_at),
    }).returning(windows.c.count)


_COUNT_IN_WINDOW = {name: _count_in_window_statement(name) for name in ("sqlite", "postgresql")}
_UNCOUNT = (update(windows).where(windows.c.key == _p("k"), windows.c.expires_at > _p("now"))
            .values(count=case((windows.c.count > _p("amount"), windows.c.count - _p("amount")), else_=0))
            .returning(windows.c.count))
_WINDOW = select(windows).where(windows.c.key == _p("k"), windows.c.expires_at > _p("now"))


def count_in_window(db: Tx, key: str, *, amount: int, now: datetime, expires_at: datetime) -> int:
    """Add to a window's count in one statement (a new window if the old one ran out); the new count."""
    return db.execute(_COUNT_IN_WINDOW[db.dialect.name],
                      {"k": key, "amount": amount, "now": now, "expires": expires_at}).scalar_one()


def uncount_in_window(db: Tx, key: str, *, amount: int, now: datetime) -> int:
    """Lower a live window's count (never below zero); 0 when there is no live window."""
    return db.execute(_UNCOUNT, {"k": key, "amount": amount, "now": now}).scalar() or 0


def rate_window(db: Tx, key: str, now: datetime) -> WindowRow | None:
    return _first(db, _WINDOW, {"k": key, "now": now}, WindowRow)


def clear_window(db: Tx, key: str) -> None:
    db.execute(delete(windows).where(windows.c.key == key))


def clear_windows(db: Tx) -> int:
    return db.execute(delete(windows)).rowcount


def delete_expired_windows(db: Tx, now: datetime) -> int:
    return db.execute(delete(windows).where(windows.c.expires_at <= now)).rowcount


# --- ceremonies ----------------------------------------------------------------------------

_ADD_CEREMONY = insert(ceremonies)
_TAKE_CEREMONY = (delete(ceremonies).where(ceremonies.c.challenge_hash == _p("c"),
                                           ceremonies.c.session_id_hash == _p("s"), ceremonies.c.kind == _p("k"))
                  .returning(*ceremonies.c))
_NEWEST_KEPT = (select(ceremonies.c.challenge_hash)
                .where(ceremonies.c.session_id_hash == _p("s"), ceremonies.c.kind == _p("k"))
                .order_by(ceremonies.c.expires_at.desc()).limit(_p("n")))
_KEEP_NEWEST = delete(ceremonies).where(ceremonies.c.session_id_hash == _p("s"), ceremonies.c.kind == _p("k"),
                                        ceremonies.c.challenge_hash.not_in(_NEWEST_KEPT.scalar_subquery()))


def add_ceremony(db: Tx, ceremony: CeremonyRow) -> None:
    db.execute(_ADD_CEREMONY, _values(ceremony))


def take_ceremony(db: Tx, *, challenge_hash: str, session_id_hash: str, kind: str) -> CeremonyRow | None:
    """Delete the ceremony as it is read: of any number of parallel callers, one gets it."""
    return _first(db, _TAKE_CEREMONY, {"c": challenge_hash, "s": session_id_hash, "k": kind}, CeremonyRow)


def delete_expired_ceremonies(db: Tx, now: datetime) -> int:
    return db.execute(delete(ceremonies).where(ceremonies.c.expires_at <= now)).rowcount


def keep_newest_ceremonies(db: Tx, *, session_id_hash: str, kind: str, keep: int) -> int:
    """Delete this session's ceremonies of this kind but its `keep` newest, in one statement."""
    return db.execute(_KEEP_NEWEST, {"s": session_id_hash, "k": kind, "n": keep}).rowcount


# --- credentials (passkeys) ----------------------------------------------------------------

_CREDENTIALS_OF = (select(credentials).where(credentials.c.user_id == _p("u"))
                   .order_by(credentials.c.created_at, credentials.c.id))
_COUNT_CREDENTIALS = select(func.count()).select_from(credentials).where(credentials.c.user_id == _p("u"))
_BY_RAW_ID = select(credentials).where(credentials.c.credential_id == _p("c"))
_WITH_OWNER = (select(credentials, users).join_from(credentials, users, users.c.id == credentials.c.user_id)
               .where(credentials.c.credential_id == _p("c")))
_SPLIT = len(credentials.c)
_ADD_CREDENTIAL = insert(credentials).returning(*credentials.c)
_RECORD_USE = (update(credentials).where(credentials.c.id == _p("pk"), credentials.c.sign_count == _p("old"))
               .values(sign_count=_p("new"), backup_state=_p("bs"), last_used_at=_p("when")))


def credentials_of(db: Tx, user_id: int) -> list[CredentialRow]:
    return [CredentialRow(*row) for row in db.execute(_CREDENTIALS_OF, {"u": user_id})]


def count_credentials(db: Tx, user_id: int) -> int:
    return db.execute(_COUNT_CREDENTIALS, {"u": user_id}).scalar_one()


def credential_by_raw_id(db: Tx, credential_id: bytes) -> CredentialRow | None:
    return _first(db, _BY_RAW_ID, {"c": credential_id}, CredentialRow)


def credential_with_owner(db: Tx, credential_id: bytes) -> tuple[UserRow, CredentialRow] | None:
    """(the owner, the passkey) of a credential ID, in one statement; None when unknown."""
    row = db.execute(_WITH_OWNER, {"c": credential_id}).first()
    if row is None:
        return None
    return UserRow(*row[_SPLIT:]), CredentialRow(*row[:_SPLIT])


def add_credential(db: Tx, *, user_id: int, credential_id: bytes, public_key: bytes, algorithm: int,
                   sign_count: int, aaguid: str, transports: str, backup_eligible: bool, backup_state: bool,
                   name: str, created_at: datetime, hold_until: datetime | None) -> CredentialRow:
    """A new passkey (IntegrityError when its ID is registered already: the UNIQUE index decides races)."""
    return CredentialRow(*db.execute(_ADD_CREDENTIAL, {
        "user_id": user_id, "credential_id": credential_id, "public_key": public_key, "algorithm": algorithm,
        "sign_count": sign_count, "aaguid": aaguid, "transports": transports, "backup_eligible": backup_eligible,
        "backup_state": backup_state, "name": name, "created_at": created_at, "hold_until": hold_until}).one())


def record_credential_use(db: Tx, credential_pk: int, *, old_count: int, new_count: int, backup_state: bool,
                          when: datetime) -> bool:
    """Compare-and-set: False when another login moved the sign counter first (security.md §12)."""
    return db.execute(_RECORD_USE, {"pk": credential_pk, "old": old_count, "new": new_count, "bs": backup_state,
                                    "when": when}).rowcount == 1


def rename_credential(db: Tx, user_id: int, credential_id: bytes, name: str) -> CredentialRow | None:
    return _first(db, update(credentials).where(credentials.c.user_id == user_id,
                                                credentials.c.credential_id == credential_id)
                  .values(name=name).returning(*credentials.c), {}, CredentialRow)


def delete_credential(db: Tx, user_id: int, credential_id: bytes) -> CredentialRow | None:
    return _first(db, delete(credentials).where(credentials.c.user_id == user_id,
                                                credentials.c.credential_id == credential_id)
                  .returning(*credentials.c), {}, CredentialRow)


def release_passkey_holds(db: Tx, user_id: int, now: datetime) -> int:
    """End the holds on the customer's passkeys, and on the sessions and step-ups made with them;
    how many passkeys were still on hold."""
    released = db.execute(update(credentials).where(credentials.c.user_id == user_id, credentials.c.hold_until > now)
                          .values(hold_until=None)).rowcount
    db.execute(update(sessions).where(sessions.c.user_id == user_id)
               .values(login_hold_until=None, verified_hold_until=None))
    return released


def delete_credentials_of(db: Tx, user_id: int) -> int:
    return db.execute(delete(credentials).where(credentials.c.user_id == user_id)).rowcount


# --- rows in, values out -------------------------------------------------------------------


def _values(row, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__dataclass_fields__ if name not in skip}

