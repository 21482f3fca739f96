"""Rules about accounts: lockout after consecutive failures (more to come: step-up, passkey date)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session as Db

from . import store


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
