"""One-time codes: 6 digits from `secrets`, kept only as a keyed hash bound to one session.

NIST SP 800-63B §5.1.3 (out-of-band), with the contract's limits: valid `code_ttl` seconds,
`code_max_attempts` wrong entries, a resend voids the previous code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from . import store_codes
from .db import Tx
from .rows import CodeRow
from .store_batch import Statement, Writer

_SIX_DIGITS = re.compile(r"[0-9]{6}")


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def normalise(entered: str) -> str:
    """What the customer meant: full-width digits and stray spaces are fine (NFKC, then strip)."""
    return unicodedata.normalize("NFKC", entered).strip()


@dataclass(frozen=True)
class CodeHasher:
    key: bytes

    @classmethod
    def from_secret(cls, secret_key: str) -> "CodeHasher":
        # A key of its own, so a leaked code table cannot be checked against cookie signatures.
        return cls(hmac.new(secret_key.encode(), b"tobira one-time code v1", hashlib.sha256).digest())

    def digest(self, code: str, *, session_id_hash: str, purpose: str) -> str:
        # Binding the session and purpose in means a code is worthless anywhere else.
        msg = f"{purpose}\x00{session_id_hash}\x00{code}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()


def issue(db: Writer, hasher: CodeHasher, *, session_id_hash: str, user_id: int, purpose: str,
          now: datetime, ttl: int) -> str:
    """Store a fresh code (voiding any earlier one) and return it in clear, for the e-mail only."""
    code = new_code()
    store_codes.replace_code(db, session_id_hash=session_id_hash, user_id=user_id, purpose=purpose,
                       code_hash=hasher.digest(code, session_id_hash=session_id_hash, purpose=purpose),
                       sent_at=now, expires_at=now + timedelta(seconds=ttl))
    return code


# What one entry came to; each but "ok" and "no_code" is also the error code the customer gets.
Outcome = Literal["ok", "code_invalid", "code_expired", "code_exhausted", "no_code"]


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of one entry: ok, or which rejection, and how many entries remain."""

    outcome: Outcome
    attempts_left: int = 0
    user_id: int | None = None
    # A guess was weighed and was wrong: it counts toward the account's lockout.
    wrong_guess: bool = False
    code_id: int | None = None  # ok: the code, for `use`

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def check(db: Tx, hasher: CodeHasher, *, session_id_hash: str, purpose: str, entered: str,
          now: datetime, max_attempts: int) -> CodeCheck:
    """Check one entry. A right code is ok but not yet used: what it lets through is written with
    `use(check)` as its gate (store_batch.write_together), which deletes it: it works once.

    "A code is void after max_attempts wrong entries" is two conditions on one row, read as it is
    written: a wrong entry is counted only while fewer were (store_codes.add_wrong_attempt), and a right
    one is used only while fewer were (store_codes.gate_code_use). Of any number of parallel entries at
    most max_attempts wrong ones are ever counted, and a right one among them gets in only ahead
    of the last of those: no more chances than max_attempts entries one after another."""
    row = store_codes.code_for(db, session_id_hash, purpose)
    if row is None:
        return CodeCheck("no_code")
    if row.wrong_attempts >= max_attempts:
        # Already void: no guess is evaluated, so nothing counts against the account either.
        return CodeCheck("code_exhausted", user_id=row.user_id)
    if now >= row.expires_at:
        return CodeCheck("code_expired", user_id=row.user_id)
    candidate = normalise(entered)
    expected = row.code_hash
    # Always compute and compare a digest, so a malformed entry costs the same as a wrong one.
    digest = hasher.digest(candidate if _SIX_DIGITS.fullmatch(candidate) else "-",
                           session_id_hash=session_id_hash, purpose=purpose)
    if hmac.compare_digest(digest, expected):
        return CodeCheck("ok", user_id=row.user_id, code_id=row.id)
    wrong = store_codes.add_wrong_attempt(db, row.id, max_attempts=max_attempts)
    if wrong is None:  # parallel wrong entries used the last ones up first: void, this one not counted
        return CodeCheck("code_exhausted", user_id=row.user_id)
    left = max_attempts - wrong
    if left <= 0:
        return CodeCheck("code_exhausted", user_id=row.user_id, wrong_guess=True)
    return CodeCheck("code_invalid", attempts_left=left, user_id=row.user_id, wrong_guess=True)


def use(check: CodeCheck, *, max_attempts: int) -> Statement:
    """The gate an ok entry's writes hang on: the code used up, if it still may be."""
    assert check.ok and check.code_id is not None  # only an ok check has a code to use
    return store_codes.gate_code_use(check.code_id, max_attempts=max_attempts)


def not_used(db: Tx, *, session_id_hash: str, purpose: str, max_attempts: int) -> CodeCheck:
    """What a right entry comes to when its code could not be used (the gate of `use` did not pass):
    void by wrong entries that got in first (code_exhausted, as for any entry to a void code), or
    used by a parallel right entry (no_code)."""
    row = store_codes.code_for(db, session_id_hash, purpose)
    if row is not None and row.wrong_attempts >= max_attempts:
        return CodeCheck("code_exhausted", user_id=row.user_id)
    return CodeCheck("no_code")


def drop(db: Tx, *, session_id_hash: str, purpose: str) -> None:
    """Remove the live code (one that was never delivered must not stay valid)."""
    store_codes.drop_code(db, session_id_hash, purpose)


def resend_wait(row: CodeRow | None, *, now: datetime, resend_after: int) -> int:
    """Seconds until another code may be sent (0: now)."""
    if row is None:
        return 0
    ready = row.sent_at + timedelta(seconds=resend_after)
    return max(0, int((ready - now).total_seconds() + 0.999))
