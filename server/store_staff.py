"""The queries of the staff console's tables: staff, their passkeys, ceremonies and sessions, the
two-person requests and the audit log. Same rules as store.py: SQLAlchemy Core, frozen rows."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Table, delete, func, insert, or_, select, update

from .db import Tx
from .rows import (AuditRow, StaffCeremonyRow, StaffCredentialRow, StaffRequestRow, StaffRow, StaffSessionRow,
                   UserRow)
from .store import DIALECTS, first, tables, written

staff: Table = tables["staff"]
credentials: Table = tables["staff_credentials"]
ceremonies: Table = tables["staff_ceremonies"]
sessions: Table = tables["staff_sessions"]
requests: Table = tables["staff_requests"]
audit: Table = tables["audit_log"]
users: Table = tables["users"]


# --- staff -----------------------------------------------------------------------------------


# INSERT ... ON CONFLICT DO NOTHING, as store.py adds customers and passkeys: the UNIQUE index
# decides a race, and one statement does it.
_ADD_STAFF = {name: dialect.insert(staff).on_conflict_do_nothing().returning(*staff.c)
              for name, dialect in DIALECTS.items()}
_ADD_CREDENTIAL = {name: dialect.insert(credentials).on_conflict_do_nothing().returning(*credentials.c)
                   for name, dialect in DIALECTS.items()}


def _new(row) -> dict:
    return {k: v for k, v in asdict(row).items() if k != "id"}  # the database numbers it


def add_staff(db: Tx, row: StaffRow) -> StaffRow | None:
    """None when the name (or, never in practice, the user handle) is taken."""
    return written(db.execute(_ADD_STAFF[db.dialect.name], _new(row)), StaffRow)


def staff_by_name(db: Tx, name: str) -> StaffRow | None:
    return first(db, select(staff).where(staff.c.name == name), {}, StaffRow)


def staff_by_id(db: Tx, staff_id: int) -> StaffRow | None:
    return first(db, select(staff).where(staff.c.id == staff_id), {}, StaffRow)


def all_staff(db: Tx, *, limit: int | None = None, offset: int = 0) -> list[StaffRow]:
    return [StaffRow(*r) for r in db.read(select(staff).order_by(staff.c.name).limit(limit).offset(offset))]


def set_enrolment(db: Tx, staff_id: int, code_hash: str | None, expires_at: datetime | None,
                  issued_by: int | None) -> None:
    db.execute(update(staff).where(staff.c.id == staff_id)
               .values(enrolment_hash=code_hash, enrolment_expires_at=expires_at, code_issued_by=issued_by))


def take_enrolment(db: Tx, staff_id: int, code_hash: str) -> bool:
    """Use up the enrolment code (compare-and-set: two parallel enrolments cannot both use it)."""
    return db.execute_alone(update(staff).where(staff.c.id == staff_id, staff.c.enrolment_hash == code_hash)
                            .values(enrolment_hash=None, enrolment_expires_at=None)).rowcount == 1


def disable(db: Tx, staff_id: int, when: datetime) -> None:
    db.execute(update(staff).where(staff.c.id == staff_id).values(disabled_at=when))


def count_credentials(db: Tx, staff_id: int) -> int:
    return db.read(select(func.count()).select_from(credentials).where(credentials.c.staff_id == staff_id)).scalar_one()


def add_credential(db: Tx, row: StaffCredentialRow) -> StaffCredentialRow | None:
    """None when the credential ID is registered already (to anyone)."""
    return written(db.execute(_ADD_CREDENTIAL[db.dialect.name], _new(row)), StaffCredentialRow)


def credential_with_staff(db: Tx, credential_id: bytes) -> tuple[StaffRow, StaffCredentialRow] | None:
    row = db.read(select(credentials, staff).join_from(credentials, staff, staff.c.id == credentials.c.staff_id)
                  .where(credentials.c.credential_id == credential_id)).one_or_none()
    if row is None:
        return None
    split = len(credentials.c)
    return StaffRow(*row[split:]), StaffCredentialRow(*row[:split])


def step_counter(db: Tx, credential_pk: int, *, old: int, new: int, backup_state: bool, when: datetime) -> bool:
    """Compare-and-set on the sign counter, as for customers' passkeys (security.md 12)."""
    return db.execute(update(credentials).where(credentials.c.id == credential_pk, credentials.c.sign_count == old)
                      .values(sign_count=new, backup_state=backup_state, last_used_at=when)).rowcount == 1


def delete_credentials(db: Tx, staff_id: int) -> int:
    return db.execute(delete(credentials).where(credentials.c.staff_id == staff_id)).rowcount


# --- ceremonies ------------------------------------------------------------------------------


def add_ceremony(db: Tx, row: StaffCeremonyRow) -> None:
    db.execute(insert(ceremonies).values(**asdict(row)))


def take_ceremony(db: Tx, *, challenge_hash: str, browser_hash: str, kind: str) -> StaffCeremonyRow | None:
    return written(db.execute_alone(delete(ceremonies).where(
        ceremonies.c.challenge_hash == challenge_hash, ceremonies.c.browser_hash == browser_hash,
        ceremonies.c.kind == kind).returning(*ceremonies.c)), StaffCeremonyRow)


def delete_expired(db: Tx, now: datetime) -> int:
    """The sweep: old ceremonies and sessions past their limits (app.py runs it)."""
    return db.execute(delete(ceremonies).where(ceremonies.c.expires_at <= now)).rowcount


# --- sessions --------------------------------------------------------------------------------


def add_session(db: Tx, row: StaffSessionRow) -> None:
    db.execute(insert(sessions).values(**asdict(row)))


def session_with_staff(db: Tx, id_hash: str) -> tuple[StaffSessionRow, StaffRow] | None:
    row = db.read(select(sessions, staff).join_from(sessions, staff, staff.c.id == sessions.c.staff_id)
                  .where(sessions.c.id_hash == id_hash)).one_or_none()
    if row is None:
        return None
    split = len(sessions.c)
    return StaffSessionRow(*row[:split]), StaffRow(*row[split:])


def touch_session(db: Tx, id_hash: str, when: datetime) -> None:
    db.execute(update(sessions).where(sessions.c.id_hash == id_hash).values(last_seen_at=when))


def end_session(db: Tx, id_hash: str) -> None:
    db.execute(delete(sessions).where(sessions.c.id_hash == id_hash))


def end_sessions_of(db: Tx, staff_id: int) -> int:
    return db.execute(delete(sessions).where(sessions.c.staff_id == staff_id)).rowcount


def delete_stale_sessions(db: Tx, *, idle_before: datetime, started_before: datetime) -> int:
    return db.execute(delete(sessions).where(or_(sessions.c.last_seen_at < idle_before,
                                                 sessions.c.created_at < started_before))).rowcount


# --- two-person requests ---------------------------------------------------------------------


def add_request(db: Tx, row: StaffRequestRow) -> None:
    db.execute(insert(requests).values(**asdict(row)))


def take_request(db: Tx, request_id: str, *, approver: int, when: datetime) -> StaffRequestRow | None:
    """Mark the request approved and done, once (compare-and-set: two approvals cannot both act)."""
    return written(db.execute_alone(update(requests).where(requests.c.id == request_id, requests.c.done_at.is_(None))
                                    .values(approved_by=approver, done_at=when).returning(*requests.c)),
                   StaffRequestRow)


def request_by_id(db: Tx, request_id: str) -> StaffRequestRow | None:
    return first(db, select(requests).where(requests.c.id == request_id), {}, StaffRequestRow)


def pending_requests(db: Tx, now: datetime, *, limit: int, offset: int) -> list[tuple[StaffRequestRow, str, str]]:
    """Requests still open and young enough, oldest first, with the customer's code and the requester's name."""
    requester = staff.alias("requester")
    rows = db.read(select(requests, users.c.customer_code, requester.c.name)
                   .join_from(requests, users, users.c.id == requests.c.user_id)
                   .join(requester, requester.c.id == requests.c.requested_by)
                   .where(requests.c.done_at.is_(None), requests.c.expires_at > now,
                          requester.c.disabled_at.is_(None))  # a disabled member's requests die with them
                   .order_by(requests.c.requested_at).limit(limit).offset(offset))
    split = len(requests.c)
    return [(StaffRequestRow(*r[:split]), r[split], r[split + 1]) for r in rows]


# --- the audit log ---------------------------------------------------------------------------


def add_audit(db: Tx, row: AuditRow) -> None:
    db.execute(insert(audit).values(**_new(row)))


def audit_entries(db: Tx, *, staff_name: str | None = None, customer_code: str | None = None,
                  action: str | None = None, since: datetime | None = None, until: datetime | None = None,
                  limit: int | None = None, offset: int = 0) -> list[AuditRow]:
    """Newest first, filtered."""
    statement = select(audit)
    if staff_name:
        statement = statement.where(audit.c.staff == staff_name)
    if customer_code:
        statement = statement.where(audit.c.customer_code == customer_code)
    if action:
        statement = statement.where(audit.c.action == action)
    if since:
        statement = statement.where(audit.c.at >= since)
    if until:
        statement = statement.where(audit.c.at < until)
    statement = statement.order_by(audit.c.id.desc()).limit(limit).offset(offset)
    return [AuditRow(*r) for r in db.read(statement)]


def find_customers(db: Tx, query: str, *, limit: int, offset: int) -> list[UserRow]:
    """By customer code (exact, any case) or e-mail (exact, any case)."""
    wanted = query.strip().lower()
    rows = db.read(select(users).where(or_(func.lower(users.c.customer_code) == wanted,
                                           func.lower(users.c.email) == wanted))
                   .order_by(users.c.customer_code).limit(limit).offset(offset))
    return [UserRow(*r) for r in rows]
