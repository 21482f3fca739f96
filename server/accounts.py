"""Customers: creation and the support desk's account actions (used by the CLI)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from . import devices, oidc_logout, policy, store, store_codes
from .db import Tx
from .login import CUSTOMER_CODE
from .rows import UserRow

import json

# Deliberately plain: one @, a dotted domain, no spaces or angle brackets (header injection).
# Also /openapi.json's pattern for the field, so written in what Python and ECMA-262 both read.
EMAIL_PATTERN = (r'[^@\s<>,;"\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?'
                 r'(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+')
EMAIL_MAX = 254  # RFC 5321 §4.5.3.1.3, a path's 256 octets less its angle brackets
_EMAIL = re.compile(EMAIL_PATTERN)


class AccountError(ValueError):
    """A refused account action; the message is one line for the operator."""


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > EMAIL_MAX or not _EMAIL.fullmatch(email):
        raise AccountError(f"not a usable e-mail address: {email!r}")
    return email


def check_customer_code(code: str) -> str:
    if not CUSTOMER_CODE.fullmatch(code):
        raise AccountError("a customer code is 4-20 characters of A-Z a-z 0-9 -")
    return code


def check_display_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100 or any(ord(c) < 0x20 for c in name):
        raise AccountError("a name is 1-100 printable characters")
    return name


def add_user(db: Tx, *, customer_code: str, display_name: str, email: str, password_hash: str,
             now: datetime) -> UserRow:
    user = store.add_user(db, customer_code=customer_code, display_name=display_name, email=email,
                          password_hash=password_hash, user_handle=secrets.token_bytes(32), created_at=now)
    if user is None:  # taken, also by a parallel add that won the race
        raise AccountError(f"customer code {customer_code} is already taken")
    store.add_event(db, kind="account_created", when=now, user_id=user.id, actor="support")
    return user


def require_user(db: Tx, customer_code: str) -> UserRow:
    user = store.user_by_code(db, customer_code)
    if user is None:
        raise AccountError(f"no customer with code {customer_code}")
    return user


def unlock(db: Tx, customer_code: str, *, now: datetime) -> str:
    """Lift either lock and reset the failure count; which lock it was ("no" when none: the count is
    still reset)."""
    user = require_user(db, customer_code)
    was = policy.lock_state(user)
    store.unlock_user(db, user.id)
    store.add_event(db, kind="account_unlocked", when=now, user_id=user.id, actor="support", lock=was)
    return was


def check_hold_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    reason = " ".join(reason.split())
    if len(reason) > 200 or any(ord(c) < 0x20 for c in reason):
        raise AccountError("a reason is at most 200 printable characters")
    return reason or None


def hold(db: Tx, customer_code: str, *, now: datetime, reason: str | None) -> int:
    """The support desk's lock on a suspected takeover: every sign-in stops, passkeys included, and
    every session ends at once; only `unlock` lifts it. Returns the sessions ended."""
    user = require_user(db, customer_code)
    reason = check_hold_reason(reason)
    store.hold_user(db, user.id, now, reason)
    ended = store.delete_user_sessions(db, user.id)
    oidc_logout.sessions_ended(db, ended, now)
    store.add_event(db, kind="account_held", when=now, user_id=user.id, actor="support", reason=reason,
                    sessions_ended=len(ended))
    return len(ended)


def release_hold(db: Tx, customer_code: str, *, now: datetime) -> int:
    """After the desk has checked the customer's identity by phone: the customer's new passkeys, and
    the sessions made with them, count at once. Returns how many passkeys were on hold."""
    user = require_user(db, customer_code)
    released = store.release_passkey_holds(db, user.id, now)
    store.add_event(db, kind="passkey_hold_released", when=now, user_id=user.id, actor="support", count=released)
    return released


def set_email(db: Tx, customer_code: str, email: str, *, now: datetime) -> None:
    user = require_user(db, customer_code)
    email = check_email(email)
    store.set_email(db, user.id, email)
    # A new address means codes go somewhere else: a remembered PC must prove itself again.
    devices.forget_all(db, user.id)
    store.add_event(db, kind="email_changed", when=now, user_id=user.id, actor="support")


def describe(db: Tx, customer_code: str, *, now: datetime) -> dict[str, str]:
    """What the support desk sees; the look itself is recorded (who saw what is part of the audit)."""
    user = require_user(db, customer_code)
    trusted = store_codes.trusted_devices_of(db, user.id)
    passkeys = store.credentials_of(db, user.id)
    store.add_event(db, kind="support_viewed", when=now, user_id=user.id, actor="support")
    return {
        "customer_code": user.customer_code,
        "name": user.display_name,
        "email": user.email or "-",
        "locked": policy.lock_state(user),
        "locked_at": user.locked_at.isoformat() if user.locked_at else "-",
        "held_at": user.held_at.isoformat() if user.held_at else "-",
        "hold_reason": user.hold_reason or "-",
        "failed_logins": str(user.failed_logins),
        "passkeys": str(len(passkeys)),
        "passkeys_on_hold": str(sum(policy.on_hold(c.hold_until, now) for c in passkeys)),
        "last_login": user.last_login_at.isoformat() if user.last_login_at else "-",
        "trusted_devices": str(len(trusted)),
        "created_at": user.created_at.isoformat(),
    }


def customer(db: Tx, user_id: int):
    """The customer a session belongs to (None when gone)."""
    return store.user_by_id(db, user_id)


def customer_with_passkey_count(db: Tx, user_id: int):
    """(the customer, how many passkeys they hold): what every customer page shows."""
    return store.user_by_id(db, user_id), store.count_credentials(db, user_id)


def recent_events(db: Tx, user_id: int, *, limit: int = 200) -> list:
    """The customer's security events, newest first (the activity page)."""
    return store.events_of(db, user_id, newest_first=True, limit=limit)


def end_sessions(db: Tx, customer_code: str, *, now: datetime) -> int:
    """"Log out everywhere" for the support desk: every session ends; remembered PCs stay."""
    user = require_user(db, customer_code)
    ended = store.delete_user_sessions(db, user.id)
    oidc_logout.sessions_ended(db, ended, now)
    store.add_event(db, kind="sessions_ended", when=now, user_id=user.id, actor="support", count=len(ended))
    return len(ended)


def reset_passkeys(db: Tx, customer_code: str, *, now: datetime, notify) -> int:
    """The answer to a lost device: every passkey, session and trusted device goes; the customer is told.

    `notify(db, user, count)` queues the e-mail in this same transaction.
    """
    user = require_user(db, customer_code)
    removed = store.delete_credentials_of(db, user.id)
    oidc_logout.sessions_ended(db, store.delete_user_sessions(db, user.id), now)
    devices.forget_all(db, user.id)
    store.add_event(db, kind="passkeys_reset", when=now, user_id=user.id, actor="support", count=removed)
    notify(db, user, removed)
    return removed


def events(db: Tx, customer_code: str) -> list[dict]:
    """The customer's security events, oldest first, as plain dicts (for `tobira events`)."""
    user = require_user(db, customer_code)
    out = []
    for e in store.events_of(db, user.id):
        out.append({"at": e.created_at.isoformat(), "kind": e.kind, "ip": e.ip, "user_agent": e.user_agent,
                    **(json.loads(e.detail) if e.detail else {})})
    return out
