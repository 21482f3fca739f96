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

from .db import Tx

from . import store
from .rows import CodeRow

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


def issue(db: Tx, hasher: CodeHasher, *, session_id_hash: str, user_id: int, purpose: str,
          now: datetime, ttl: int) -> str:
    """Store a fresh code (voiding any earlier one) and return it in clear, for the e-mail only."""
    code = new_code()
    store.replace_code(db, session_id_hash=session_id_hash, user_id=user_id, purpose=purpose,
                       code_hash=hasher.digest(code, session_id_hash=session_id_hash, purpose=purpose),
                       sent_at=now, expires_at=now + timedelta(seconds=ttl))
    return code


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of one entry: ok, or which rejection, and how many entries remain."""

    outcome: str  # "ok" | "code_invalid" | "code_expired" | "code_exhausted" | "no_code"
    attempts_left: int = 0
    user_id: int | None = None
    # A guess was weighed and was wrong: it counts toward the account's lockout.
    wrong_guess: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def check(db: Tx, hasher: CodeHasher, *, session_id_hash: str, purpose: str, entered: str,
          now: datetime, max_attempts: int) -> CodeCheck:
    """Check one entry. A right code is deleted as it is accepted, so it works once only."""
    row = store.code_for(db, session_id_hash, purpose)
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
        if not store.delete_code(db, row.id):
            return CodeCheck("no_code")
        return CodeCheck("ok", user_id=row.user_id)
    wrong = store.add_wrong_attempt(db, row.id)
    left = max_attempts - wrong
    if left <= 0:
        return CodeCheck("code_exhausted", user_id=row.user_id, wrong_guess=True)
    return CodeCheck("code_invalid", attempts_left=left, user_id=row.user_id, wrong_guess=True)


def drop(db: Tx, *, session_id_hash: str, purpose: str) -> None:
    """Remove the live code (one that was never delivered must not stay valid)."""
    row = store.code_for(db, session_id_hash, purpose)
    if row is not None:
        store.delete_code(db, row.id)


def resend_wait(row: CodeRow | None, *, now: datetime, resend_after: int) -> int:
    """Seconds until another code may be sent (0: now)."""
    if row is None:
        return 0
    ready = row.sent_at + timedelta(seconds=resend_after)
    return max(0, int((ready - now).total_seconds() + 0.999))
