"""Rules about accounts: lockout after consecutive failures, and the passkey-mandatory date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
