"""Staff: the support desk and the admins. They are not customers: their own table, passkey-only
sign-in (staff_auth.py), their own session and cookie. This module holds their accounts, enrolment
codes and sessions; the CLI (`tobira staff …`) and the console both call it."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from . import audit, store_staff
from .audit import Actor
from .db import Tx
from .errors import StaffRefusal
from .rows import StaffRow, StaffSessionRow

Role = Literal["support", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENROLMENT_TTL = timedelta(hours=24)
SESSION_IDLE = timedelta(minutes=15)
SESSION_MAX = timedelta(hours=8)
# Enrolment codes are typed by a person: four groups of four from an alphabet without look-alikes
# (80 bits).
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class StaffError(ValueError):
    """A CLI mistake (no such staff member, a name taken): one line for the operator."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_enrolment_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def enrolment_hash(code: str) -> str:
    """What is stored of a code; typed codes are compared in their canonical form."""
    return _hash(code.strip().upper().replace(" ", ""))


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise StaffError("a staff name is 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    return name


def add(db: Tx, name: str, role: str, *, now: datetime, actor: Actor) -> tuple[StaffRow, str]:
    """A new staff member and their one-time enrolment code (valid ENROLMENT_TTL, shown once to
    `actor`, who is then its issuer: support.approve), audited."""
    if role not in ROLES:
        raise StaffError(f"a role is one of {', '.join(ROLES)}")
    code = new_enrolment_code()
    row = store_staff.add_staff(db, StaffRow(id=0, name=check_name(name), role=role,
                                             user_handle=secrets.token_bytes(32), created_at=now, disabled_at=None,
                                             enrolment_hash=enrolment_hash(code),
                                             enrolment_expires_at=now + ENROLMENT_TTL, code_issued_by=actor.staff_id))
    if row is None:
        raise StaffError(f"a staff member named {name} exists already")
    audit.record(db, actor, "staff_added", now=now, reason=f"{name} as {role}")
    return row, code


def require(db: Tx, name: str) -> StaffRow:
    row = store_staff.staff_by_name(db, name)
    if row is None:
        raise StaffError(f"no staff member named {name}")
    return row


def disable(db: Tx, name: str, *, now: datetime, actor: Actor) -> int:
    """Disabled at once: every session ends now (and a disabled member's cookie loads nothing); audited."""
    row = require(db, name)
    store_staff.disable(db, row.id, now)
    audit.record(db, actor, "staff_disabled", now=now, reason=name)
    return store_staff.end_sessions_of(db, row.id)


def reset_passkeys(db: Tx, name: str, *, now: datetime, actor: Actor) -> str:
    """A lost staff passkey: all of them go, every session ends, a new enrolment code is shown to
    `actor` (its issuer from now on); audited."""
    row = require(db, name)
    if row.disabled_at is not None:
        raise StaffError(f"{name} is disabled")
    store_staff.delete_credentials(db, row.id)
    store_staff.end_sessions_of(db, row.id)
    code = new_enrolment_code()
    store_staff.set_enrolment(db, row.id, enrolment_hash(code), now + ENROLMENT_TTL, actor.staff_id)
    audit.record(db, actor, "staff_passkeys_reset", now=now, reason=name)
    return code


def listing(db: Tx, *, limit: int | None = None, offset: int = 0) -> list[dict]:
    """`tobira staff list` (all) and the console's staff page (a page of them): one object per member."""
    return [{"name": s.name, "role": s.role, "created_at": s.created_at.isoformat(),
             "disabled": s.disabled_at is not None, "passkeys": store_staff.count_credentials(db, s.id),
             "enrolment_pending": s.enrolment_hash is not None}
            for s in store_staff.all_staff(db, limit=limit, offset=offset)]


def enrolling(db: Tx, name: str, code: str, now: datetime) -> StaffRow:
    """The staff member this name and code enrol, or 400 enrolment_invalid (the same answer for an
    unknown name, a wrong, used or expired code, and a disabled member)."""
    row = store_staff.staff_by_name(db, name) if isinstance(name, str) and NAME.fullmatch(name) else None
    if (row is None or row.disabled_at is not None or row.enrolment_hash is None
            or row.enrolment_expires_at is None or now >= row.enrolment_expires_at
            or not secrets.compare_digest(row.enrolment_hash, enrolment_hash(code))):
        raise StaffRefusal("enrolment_invalid", reason="unknown name, or a wrong, used or expired code")
    return row


# --- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffSession:
    id_hash: str
    member: StaffRow

    @property
    def name(self) -> str:
        return self.member.name

    @property
    def role(self) -> str:
        return self.member.role


def hash_id(raw: str) -> str:
    return _hash(raw)


def start_session(db: Tx, member: StaffRow, *, now: datetime, ip: str | None) -> str:
    """A new staff session; the raw id for the cookie (only its hash is stored)."""
    raw = secrets.token_urlsafe(32)
    store_staff.add_session(db, StaffSessionRow(id_hash=hash_id(raw), staff_id=member.id, created_at=now,
                                                last_seen_at=now, ip=ip))
    return raw


def load_session(db: Tx, id_hash: str, *, now: datetime) -> StaffSession | None:
    """The live session of an enabled staff member, its idle clock moved on; None otherwise."""
    found = store_staff.session_with_staff(db, id_hash)
    if found is None:
        return None
    session, member = found
    if member.disabled_at is not None or now - session.last_seen_at >= SESSION_IDLE \
            or now - session.created_at >= SESSION_MAX:
        store_staff.end_session(db, id_hash)
        return None
    store_staff.touch_session(db, id_hash, now)
    return StaffSession(id_hash=id_hash, member=member)


def issued_by_chain(db: Tx, member: StaffRow) -> set[int]:
    """Everyone who held, directly or through members they enrolled, the code `member` last enrolled
    with: any of them could have enrolled as `member` (support.approve)."""
    found: set[int] = set()
    issuer = member.code_issued_by
    while issuer is not None and issuer not in found:
        found.add(issuer)
        row = store_staff.staff_by_id(db, issuer)
        issuer = row.code_issued_by if row else None
    return found
