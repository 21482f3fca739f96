"""Rules about accounts: lockout, step-up freshness, and the passkey-mandatory date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from . import store
from .config import Settings
from .db import Tx
from .rows import SessionRow


@dataclass(frozen=True)
class FailureOutcome:
    failures: int
    locked_now: bool  # this failure is the one that locked the account


def count_failure(db: Tx, user_id: int, *, now: datetime, lock_after: int) -> FailureOutcome:
    """One more consecutive failure (a wrong password or a wrong code); lock at the threshold.

    The count lives on the account, not on the code or the pending login, so re-sending codes or
    starting new logins cannot buy more guesses (JSDA guideline; security.md §20).
    """
    return lock_if_due(db, user_id, store.add_failed_login(db, user_id), now=now, lock_after=lock_after)


def lock_if_due(db: Tx, user_id: int, failures: int, *, now: datetime, lock_after: int) -> FailureOutcome:
    """Lock password sign-in once `failures` reaches the threshold (the first call to lock says so)."""
    locked_now = failures >= lock_after and store.lock_user(db, user_id, now)
    return FailureOutcome(failures, locked_now)


def lock_state(user) -> str:
    """"hold" (the support desk's: every sign-in stops), "password" (the automatic lock: the password
    and code path stops, passkeys still work) or "no"."""
    if user.held_at is not None:
        return "hold"
    return "password" if user.locked_at is not None else "no"


def passkeys_mandatory(settings: Settings, now: datetime) -> bool:
    return settings.passkey_mandatory_from is not None and now >= settings.passkey_mandatory_from


def on_hold(until: datetime | None, now: datetime) -> bool:
    """A hold lasts until its time; None is no hold."""
    return until is not None and now < until


@dataclass(frozen=True)
class Refusal:
    """Why a session may not do something now: passkey_required, passkey_on_hold (until when) or
    step_up_required."""

    reason: str
    hold_until: datetime | None = None


def important_operations_reason(session: SessionRow, settings: Settings, now: datetime) -> Refusal | None:
    """Why this session's login does not count for important operations, or None (step-up freshness
    is separate).

    From the broker's date only a passkey login counts: an e-mailed code can be phished (JSDA 2025);
    and a passkey on hold counts only once its hold ends: a phishing proxy that relayed a password and
    code could have registered it (security.md 29).
    """
    if not passkeys_mandatory(settings, now):
        return None
    if session.auth_method != "passkey":
        return Refusal("passkey_required")
    if on_hold(session.login_hold_until, now):
        return Refusal("passkey_on_hold", session.login_hold_until)
    return None


def trusted_devices_apply(settings: Settings, now: datetime) -> bool:
    """"Remember this PC" skips the code only until passkeys become mandatory."""
    return not passkeys_mandatory(settings, now)


# The important operations, as a type (web/bodies.py's Authorize) and as the tuple everything else reads.
ImportantOperation = Literal["withdrawal", "bank_account_change", "email_change", "trade"]
IMPORTANT_OPERATIONS: tuple[str, ...] = get_args(ImportantOperation)


def fresh(session: SessionRow, settings: Settings, now: datetime) -> bool:
    """Verified recently enough (TOBIRA_STEP_UP_WINDOW) for a sensitive action."""
    return session.verified_at is not None and now - session.verified_at <= timedelta(seconds=settings.step_up_window)


def important_operation_refusal(session: SessionRow, settings: Settings, now: datetime) -> Refusal | None:
    """Why this session may not do an important operation now, or None.

    Before the passkey date: any two-step session, after a recent step-up. From it: a passkey
    session, whose recent verification was itself a passkey, neither of them on hold. When more
    than one rule refuses, the one that stepping up would not cure wins (passkey_required, then
    passkey_on_hold).
    """
    refusal = important_operations_reason(session, settings, now)
    if refusal:
        return refusal
    if not fresh(session, settings, now):
        return Refusal("step_up_required")
    if passkeys_mandatory(settings, now):
        if session.verified_by != "passkey":
            return Refusal("step_up_required")  # an e-mailed code is not phishing-resistant
        if on_hold(session.verified_hold_until, now):
            return Refusal("passkey_on_hold", session.verified_hold_until)
    return None


def phishing_resistant(session: SessionRow, now: datetime) -> bool:
    """Made or verified with a passkey that is not on hold: no real-time phishing proxy can hold
    such a session (it cannot relay a passkey ceremony to its own origin)."""
    return ((session.auth_method == "passkey" and not on_hold(session.login_hold_until, now))
            or (session.verified_by == "passkey" and not on_hold(session.verified_hold_until, now)))


def new_passkey_hold(session: SessionRow, settings: Settings, now: datetime) -> datetime | None:
    """Until when a passkey registered from this session is on hold, or None.

    A session that is not phishing-resistant may be a proxy's: the passkey it adds could be the
    proxy's own. Held, it still logs in, but counts for nothing important until the customer has
    had the e-mail and time to call the broker (security.md 29).
    """
    if settings.new_passkey_hold <= 0 or phishing_resistant(session, now):
        return None
    return now + timedelta(seconds=settings.new_passkey_hold)


def step_up_missing(session: SessionRow, settings: Settings, now: datetime, *, passkey: bool) -> bool:
    """No verification recent enough for a sensitive action, or (passkey) none made with a passkey."""
    return not fresh(session, settings, now) or (passkey and session.verified_by != "passkey")


def passkey_changes_need_a_passkey(settings: Settings, now: datetime, *, has_passkey: bool) -> bool:
    """Adding or deleting a passkey: from the passkey date, a customer who already holds one steps up
    with a passkey (a code, or a login by code, can be relayed by a phishing proxy: it would enrol its
    own passkey; security.md 29)."""
    return has_passkey and passkeys_mandatory(settings, now)
