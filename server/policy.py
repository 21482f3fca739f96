"""Rules about accounts: lockout, step-up freshness, and the passkey-mandatory date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session as Db

from . import store
from .config import Settings
from .models import Session


@dataclass(frozen=True)
class FailureOutcome:
    failures: int
    locked_now: bool  # this failure is the one that locked the account


def count_failure(db: Db, user_id: int, *, now: datetime, lock_after: int) -> FailureOutcome:
    """One more consecutive failure (a wrong password or a wrong code); lock at the threshold.

    The count lives on the account, not on the code or the pending login, so re-sending codes or
    starting new logins cannot buy more guesses (JSDA guideline; security.md §20).
    """
    failures = store.add_failed_login(db, user_id)
    locked_now = failures >= lock_after and store.lock_user(db, user_id, now)
    return FailureOutcome(failures, locked_now)


def passkeys_mandatory(settings: Settings, now: datetime) -> bool:
    return settings.passkey_mandatory_from is not None and now >= settings.passkey_mandatory_from


def important_operations_reason(session: Session, settings: Settings, now: datetime) -> str | None:
    """Why this session may not do important operations, or None (step-up freshness is separate).

    From the broker's date only a passkey login counts: an e-mailed code can be phished (JSDA 2025).
    """
    if passkeys_mandatory(settings, now) and session.auth_method != "passkey":
        return "passkey_required"
    return None


def trusted_devices_apply(settings: Settings, now: datetime) -> bool:
    """"Remember this PC" skips the code only until passkeys become mandatory."""
    return not passkeys_mandatory(settings, now)


IMPORTANT_OPERATIONS = ("withdrawal", "bank_account_change", "email_change", "trade")


def fresh(session: Session, settings: Settings, now: datetime) -> bool:
    """Verified recently enough (TOBIRA_STEP_UP_WINDOW) for a sensitive action."""
    return session.verified_at is not None and now - session.verified_at <= timedelta(seconds=settings.step_up_window)


def important_operation_refusal(session: Session, settings: Settings, now: datetime) -> str | None:
    """Why this session may not do an important operation now, or None.

    Before the passkey date: any two-step session, after a recent step-up. From it: a passkey
    session, whose recent verification was itself a passkey. When both rules refuse,
    passkey_required wins: stepping up by e-mail would not help.
    """
    if important_operations_reason(session, settings, now):
        return "passkey_required"
    if not fresh(session, settings, now):
        return "step_up_required"
    if passkeys_mandatory(settings, now) and session.verified_by != "passkey":
        return "step_up_required"  # an e-mailed code is not phishing-resistant
    return None
