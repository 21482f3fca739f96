"""Every query of the customers' tables, in SQLAlchemy Core (the one-time codes' and remembered
PCs' are in store_codes.py, the outbox's and the rate-limit windows' in store_outbox.py and
store_windows.py). Functions take the caller's `db` (a `Tx`,
see db.Database.run; a write whose result nobody reads may take a `Batch` instead, see
store_batch.py) and hand back the frozen rows of rows.py.

The statements are built once, at import, with named parameters: each call only binds values,
and SQLAlchemy's compiled cache does the rest (the login path runs these on every request).
Reads go through `Tx.read`, writes through `Tx.execute`; `Tx.execute_alone` marks the writes
that are whole by themselves (a single-use take, a count), and `gate_*` functions give the
conditions a login's last writes hang on (store_batch.write_together).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from .db import Tx
from .models import SQLModel  # with the tables declared
from .rows import CeremonyRow, CredentialRow, CustomerSession, EventRow, SessionRow, UserRow
from .store_batch import Batch, Statement, Writer

tables = SQLModel.metadata.tables
users: Table = tables["users"]
sessions: Table = tables["sessions"]
events: Table = tables["security_events"]
credentials: Table = tables["credentials"]
ceremonies: Table = tables["ceremonies"]

_p = bindparam
DIALECTS = {"sqlite": sqlite, "postgresql": postgresql}  # their INSERT ... ON CONFLICT


def first(db: Tx, statement, params: dict[str, Any], row_type):
    """The row a plain read finds by a unique key, as row_type (None: none)."""
    row = db.read(statement, params).one_or_none()  # by a unique key: at most one
    return None if row is None else row_type(*row)


def written(result, row_type):
    """The row a write's RETURNING gave, as row_type (None: nothing was written)."""
    row = result.one_or_none()  # by a unique key: at most one
    return None if row is None else row_type(*row)


def _values_of(row) -> dict[str, Any]:
    """A new row's columns that have a value (the others are left NULL: fewer values to bind)."""
    return {name: value for name in row.__dataclass_fields__ if (value := getattr(row, name)) is not None}


# --- users ---------------------------------------------------------------------------------

_ADD_USER = {name: dialect.insert(users).on_conflict_do_nothing().returning(*users.c)
             for name, dialect in DIALECTS.items()}
_USER_BY_CODE = select(users).where(users.c.customer_code == _p("code"))
_USER_BY_ID = select(users).where(users.c.id == _p("uid"))
_COUNT_ATTEMPT = (update(users).where(users.c.customer_code == _p("code"))
                  .values(failed_logins=users.c.failed_logins + 1).returning(*users.c))
_FAILED = (update(users).where(users.c.id == _p("uid")).values(failed_logins=users.c.failed_logins + 1)
           .returning(users.c.failed_logins))
_LOCK = update(users).where(users.c.id == _p("uid"), users.c.locked_at.is_(None)).values(locked_at=_p("when"))
_RECORD_LOGIN = update(users).where(users.c.id == _p("uid")).values(failed_logins=0, last_login_at=_p("when"))
_UNLOCKED = (users.c.locked_at.is_(None), users.c.held_at.is_(None))
_LOCK_USER = select(users.c.id).where(users.c.id == _p("uid")).with_for_update()
_LOGIN_UNLESS_LOCKED = _RECORD_LOGIN.where(*_UNLOCKED).returning(users.c.id)
_GIVE_BACK = (update(users).where(users.c.id == _p("uid"), *_UNLOCKED)
              .values(failed_logins=case((users.c.failed_logins > 0, users.c.failed_logins - 1), else_=0))
              .returning(users.c.id))


def add_user(db: Tx, *, customer_code: str, display_name: str, email: str | None, password_hash: str,
             user_handle: bytes, created_at: datetime) -> UserRow | None:
    """A new customer; None when the code is taken (the UNIQUE index decides a race)."""
    return written(db.execute(_ADD_USER[db.dialect.name], {
        "customer_code": customer_code, "display_name": display_name, "email": email,
        "password_hash": password_hash, "user_handle": user_handle, "created_at": created_at}), UserRow)


def user_by_code(db: Tx, customer_code: str) -> UserRow | None:
    return first(db, _USER_BY_CODE, {"code": customer_code}, UserRow)


def user_by_id(db: Tx, user_id: int) -> UserRow | None:
    return first(db, _USER_BY_ID, {"uid": user_id}, UserRow)


def count_users(db: Tx) -> int:
    return db.read(select(func.count()).select_from(users)).scalar_one()


def count_attempt(db: Tx, customer_code: str) -> UserRow | None:
    """One more consecutive failure of this customer, counted before the password is looked at (a
    right one gives it back: gate_failure_given_back); the customer as now written, None when no
    customer has the code. Alone: N parallel guesses count N, whatever each one's call does next."""
    return written(db.execute_alone(_COUNT_ATTEMPT, {"code": customer_code}), UserRow)


def add_failed_login(db: Tx, user_id: int) -> int:
    """Count one failure atomically (parallel wrong guesses all count); returns the new total."""
    return db.execute(_FAILED, {"uid": user_id}).scalar_one()


def lock_user(db: Tx, user_id: int, when: datetime) -> bool:
    """Lock once; True only for the call that actually locked (so one lock e-mail is sent)."""
    return db.execute(_LOCK, {"uid": user_id, "when": when}).rowcount == 1


def record_login(db: Writer, user_id: int, when: datetime) -> None:
    """Reset the failure count and note the login."""
    db.execute(_RECORD_LOGIN, {"uid": user_id, "when": when})


def gate_login_unless_locked(user_id: int, when: datetime) -> Statement:
    """record_login, only while neither lock is set, read as the row is written: a lock that came
    first stops the login (the password path lets no one in after a lock, security.md 32)."""
    return _LOGIN_UNLESS_LOCKED, {"uid": user_id, "when": when}


def gate_failure_given_back(user_id: int) -> Statement:
    """A counted attempt (count_attempt) was right: take its count back, only while no lock is set
    (a right guess that lands after a parallel wrong one locked the account gets nothing)."""
    return _GIVE_BACK, {"uid": user_id}


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
    """Serialise work on one customer (e.g. the passkey limit under parallel registrations), until
    the call ends. PostgreSQL: a row lock. SQLite: the transaction this opens takes the one write
    lock (BEGIN IMMEDIATE, db.Tx), which serialises all writers (and FOR UPDATE is left out)."""
    db.execute(_LOCK_USER, {"uid": user_id})


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
_SESSION_AND_USER = (select(sessions, users).join_from(sessions, users, users.c.id == sessions.c.user_id)
                     .where(sessions.c.id_hash == _p("h")))
_SESSION_COLUMNS = len(sessions.c)
_DELETE_SESSION = delete(sessions).where(sessions.c.id_hash == _p("h"))
_TAKE_SESSION = _DELETE_SESSION.returning(*sessions.c)
_END_FOR_NEXT = _DELETE_SESSION.returning(sessions.c.next_path)
_TOUCH = update(sessions).where(sessions.c.id_hash == _p("h")).values(last_seen_at=_p("when"))
_SET_NEXT = update(sessions).where(sessions.c.id_hash == _p("h")).values(next_path=_p("next"))


def add_session(db: Writer, session: SessionRow) -> None:
    db.execute(_ADD_SESSION, _values_of(session))


def session_by_hash(db: Tx, id_hash: str) -> SessionRow | None:
    return first(db, _SESSION_BY_HASH, {"h": id_hash}, SessionRow)


def session_with_customer(db: Tx, id_hash: str) -> CustomerSession | None:
    """The session of a customer, with their code, name and passkey count, in one statement (what
    /api/session answers: every page and every other service asks it). None for a session without one."""
    row = db.read(_SESSION_WITH_CUSTOMER, {"h": id_hash}).first()
    if row is None:
        return None
    *session, code, name, count = row
    return CustomerSession(SessionRow(*session), code, name, count)


def session_and_customer(db: Tx, id_hash: str) -> tuple[SessionRow, UserRow] | None:
    """The session and its customer, whole, in one statement; None for none or a session without one."""
    row = db.read(_SESSION_AND_USER, {"h": id_hash}).first()
    if row is None:
        return None
    return SessionRow(*row[:_SESSION_COLUMNS]), UserRow(*row[_SESSION_COLUMNS:])


def delete_session(db: Writer, id_hash: str) -> None:
    db.execute(_DELETE_SESSION, {"h": id_hash})


def take_session(db: Tx, id_hash: str) -> SessionRow | None:
    """Delete the session as it is read: of parallel callers, one gets it (a logout is told once)."""
    return written(db.execute(_TAKE_SESSION, {"h": id_hash}), SessionRow)


def end_session_for_next(batch: Batch, id_hash: str) -> None:
    """Delete the session; write_together hands back where it was headed (its next_path)."""
    batch.execute(_END_FOR_NEXT, {"h": id_hash}, read=True)


def touch_session(db: Tx, id_hash: str, when: datetime) -> None:
    """The idle clock: alone, as it is whole by itself and a read may be all the call does else."""
    db.execute_alone(_TOUCH, {"h": id_hash, "when": when})


def set_next_path(db: Writer, id_hash: str, next_path: str) -> None:
    db.execute(_SET_NEXT, {"h": id_hash, "next": next_path})


def delete_expired_session(db: Tx, id_hash: str) -> None:
    """An expired session found by a read goes at once, whatever the call does next."""
    db.execute_alone(_DELETE_SESSION, {"h": id_hash})


def active_sessions_of(db: Tx, user_id: int) -> list[SessionRow]:
    """The customer's logged-in sessions, the most recently seen first."""
    statement = (select(sessions).where(sessions.c.user_id == user_id, sessions.c.state == "active")
                 .order_by(sessions.c.last_seen_at.desc(), sessions.c.id_hash))
    return [SessionRow(*row) for row in db.read(statement)]


def take_user_session(db: Tx, user_id: int, sid: str) -> SessionRow | None:
    """End the customer's session with this public id (sid); None when there is no such one of theirs."""
    return written(db.execute(delete(sessions).where(sessions.c.user_id == user_id, sessions.c.sid == sid)
                              .returning(*sessions.c)), SessionRow)


def delete_other_sessions(db: Tx, user_id: int, keep_id_hash: str) -> list[str | None]:
    """Every session of the customer but one ends; their sids."""
    return list(db.execute(delete(sessions).where(sessions.c.user_id == user_id, sessions.c.id_hash != keep_id_hash)
                           .returning(sessions.c.sid)).scalars())


def delete_user_sessions(db: Tx, user_id: int) -> list[str | None]:
    """Every session of the customer ends; their OpenID Connect ids (`sid`, None for a pending one)."""
    return list(db.execute(delete(sessions).where(sessions.c.user_id == user_id).returning(sessions.c.sid)).scalars())


def delete_stale_sessions(db: Tx, *, idle_before: datetime, created_before: datetime) -> int:
    return db.execute(delete(sessions).where((sessions.c.last_seen_at < idle_before)
                                             | (sessions.c.created_at < created_before))).rowcount


# --- security events -----------------------------------------------------------------------

_ADD_EVENT = insert(events)


def add_event(db: Writer, *, kind: str, when: datetime, user_id: int | None, ip: str | None = None,
              user_agent: str | None = None, **detail) -> EventRow:
    event = EventRow(id=None, kind=kind, created_at=when, user_id=user_id, ip=ip,
                     user_agent=(user_agent or None) and user_agent[:300],
                     detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None)
    db.execute(_ADD_EVENT, _values_of(event))  # (its id None: the database numbers it)
    # Logged by Database.run once the transaction commits: a rolled-back event never happened.
    db.info.setdefault("events", []).append(event)
    return event


def events_of(db: Tx, user_id: int, *, newest_first: bool = False, limit: int | None = None) -> list[EventRow]:
    order = events.c.id.desc() if newest_first else events.c.id
    statement = select(events).where(events.c.user_id == user_id).order_by(order).limit(limit)
    return [EventRow(*row) for row in db.read(statement)]


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


def add_ceremony(db: Writer, ceremony: CeremonyRow) -> None:
    db.execute(_ADD_CEREMONY, _values_of(ceremony))


def take_ceremony(db: Tx, *, challenge_hash: str, session_id_hash: str, kind: str) -> CeremonyRow | None:
    """Delete the ceremony as it is read: of any number of parallel callers, one gets it. Alone:
    it stays used up whatever the call does next."""
    return written(db.execute_alone(_TAKE_CEREMONY, {"c": challenge_hash, "s": session_id_hash, "k": kind}),
                    CeremonyRow)


_TAKEN = _TAKE_CEREMONY.cte("taken")
_TAKE_WITH_CREDENTIAL = (select(_TAKEN, credentials, users)
                         .select_from(_TAKEN.outerjoin(credentials, credentials.c.credential_id == _p("cid"))
                                      .outerjoin(users, users.c.id == credentials.c.user_id)))
_CEREMONY_COLUMNS = len(ceremonies.c)


def take_ceremony_and_credential(db: Tx, *, challenge_hash: str, session_id_hash: str, kind: str,
                                 credential_id: bytes) -> tuple[CeremonyRow | None, tuple[UserRow, CredentialRow] | None]:
    """take_ceremony, and credential_with_owner when there was a ceremony to take: one statement on
    PostgreSQL (its round trip is most of what each costs), the two in turn on SQLite."""
    if db.dialect.name != "postgresql":
        ceremony = take_ceremony(db, challenge_hash=challenge_hash, session_id_hash=session_id_hash, kind=kind)
        return ceremony, credential_with_owner(db, credential_id) if ceremony is not None else None
    row = db.execute_alone(_TAKE_WITH_CREDENTIAL, {"c": challenge_hash, "s": session_id_hash, "k": kind,
                                                   "cid": credential_id}).first()
    if row is None:
        return None, None
    split = _CEREMONY_COLUMNS + _CREDENTIAL_COLUMNS
    found = None if row[split] is None else (UserRow(*row[split:]), CredentialRow(*row[_CEREMONY_COLUMNS:split]))
    return CeremonyRow(*row[:_CEREMONY_COLUMNS]), found


def delete_expired_ceremonies(db: Tx, now: datetime) -> int:
    return db.execute(delete(ceremonies).where(ceremonies.c.expires_at <= now)).rowcount


def keep_newest_ceremonies(db: Writer, *, session_id_hash: str, kind: str, keep: int) -> None:
    """Delete this session's ceremonies of this kind but its `keep` newest, in one statement."""
    db.execute(_KEEP_NEWEST, {"s": session_id_hash, "k": kind, "n": keep})


# --- credentials (passkeys) ----------------------------------------------------------------

_CREDENTIALS_OF = (select(credentials).where(credentials.c.user_id == _p("u"))
                   .order_by(credentials.c.created_at, credentials.c.id))
_COUNT_CREDENTIALS = select(func.count()).select_from(credentials).where(credentials.c.user_id == _p("u"))
_WITH_OWNER = (select(credentials, users).join_from(credentials, users, users.c.id == credentials.c.user_id)
               .where(credentials.c.credential_id == _p("c")))
_CREDENTIAL_COLUMNS = len(credentials.c)
_ADD_CREDENTIAL = {name: dialect.insert(credentials).on_conflict_do_nothing().returning(*credentials.c)
                   for name, dialect in DIALECTS.items()}
_COUNTER_STEP = (update(credentials).where(credentials.c.id == _p("pk"), credentials.c.sign_count == _p("old"))
                 .values(sign_count=_p("new"), backup_state=_p("bs"), last_used_at=_p("when"),
                         uv_initialized=_p("uv"))
                 .returning(credentials.c.id))


def credentials_of(db: Tx, user_id: int) -> list[CredentialRow]:
    return [CredentialRow(*row) for row in db.read(_CREDENTIALS_OF, {"u": user_id})]


def count_credentials(db: Tx, user_id: int) -> int:
    return db.read(_COUNT_CREDENTIALS, {"u": user_id}).scalar_one()


def credential_with_owner(db: Tx, credential_id: bytes) -> tuple[UserRow, CredentialRow] | None:
    """(the owner, the passkey) of a credential ID, in one statement; None when unknown."""
    row = db.read(_WITH_OWNER, {"c": credential_id}).first()
    if row is None:
        return None
    return UserRow(*row[_CREDENTIAL_COLUMNS:]), CredentialRow(*row[:_CREDENTIAL_COLUMNS])


def add_credential(db: Tx, *, user_id: int, credential_id: bytes, public_key: bytes, algorithm: int,
                   sign_count: int, aaguid: str, transports: str, backup_eligible: bool, backup_state: bool,
                   name: str, created_at: datetime, hold_until: datetime | None,
                   uv_initialized: bool = True) -> CredentialRow | None:
    """A new passkey; None when its ID is registered already (the UNIQUE index decides a race)."""
    return written(db.execute(_ADD_CREDENTIAL[db.dialect.name], {
        "user_id": user_id, "credential_id": credential_id, "public_key": public_key, "algorithm": algorithm,
        "sign_count": sign_count, "aaguid": aaguid, "transports": transports, "backup_eligible": backup_eligible,
        "backup_state": backup_state, "name": name, "created_at": created_at, "hold_until": hold_until,
        "uv_initialized": uv_initialized}),
        CredentialRow)


def gate_sign_counter(credential_pk: int, *, old_count: int, new_count: int, backup_state: bool,
                      uv_initialized: bool, when: datetime) -> Statement:
    """Compare-and-set: the use is written only while the sign counter is still the one verified
    against; another login that moved it first makes this gate fail (security.md §12)."""
    return _COUNTER_STEP, {"pk": credential_pk, "old": old_count, "new": new_count, "bs": backup_state,
                           "uv": uv_initialized, "when": when}


def rename_credential(db: Tx, user_id: int, credential_id: bytes, name: str) -> CredentialRow | None:
    return written(db.execute(update(credentials).where(credentials.c.user_id == user_id,
                                                         credentials.c.credential_id == credential_id)
                               .values(name=name).returning(*credentials.c)), CredentialRow)


def delete_credential(db: Tx, user_id: int, credential_id: bytes) -> CredentialRow | None:
    return written(db.execute(delete(credentials).where(credentials.c.user_id == user_id,
                                                         credentials.c.credential_id == credential_id)
                               .returning(*credentials.c)), CredentialRow)


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
