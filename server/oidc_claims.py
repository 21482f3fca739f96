"""What an app learns of a login (OpenID Connect): how the customer proved who they are.

`amr` (RFC 8176) names the methods: a passkey is proof of possession of a key, `hwk` when the key
never leaves its authenticator, `swk` when it is a synced passkey (backup eligible: a copy lives
in the provider's cloud), with `user` (WebAuthn user verification) and `mfa`; the legacy login is
`pwd` + `otp` (the e-mailed one-time code) + `mfa`; a remembered PC skipped the code: `pwd` alone.
`acr` (OpenID EAP ACR values) is the promise: `phrh` (phishing-resistant, hardware-protected) or
`phr` (phishing-resistant), only for a passkey not on hold (a passkey added from a session a
phishing proxy could hold proves nothing yet, security.md 29); the legacy login has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from . import policy
from .config import Settings
from .rows import SessionRow

PHR, PHRH = "phr", "phrh"
ACR_VALUES = (PHRH, PHR)  # strongest first


@dataclass(frozen=True)
class Proof:
    """How a session's customer proved who they are, as an app is told."""

    auth_time: datetime
    amr: tuple[str, ...]
    acr: str | None


def _key_method(synced: bool | None) -> str:
    return "swk" if synced else "hwk"


def _acr(synced: bool | None) -> str:
    return PHR if synced else PHRH


def proof_of(session: SessionRow, now: datetime) -> Proof:
    """A passkey login, or a passkey step-up on a session made otherwise (then its time counts)."""
    login_time = session.authenticated_at or session.created_at
    if session.auth_method == "passkey":
        acr = None if policy.on_hold(session.login_hold_until, now) else _acr(session.login_synced)
        return Proof(login_time, (_key_method(session.login_synced), "user", "mfa"), acr)
    amr: tuple[str, ...] = ("pwd", "otp", "mfa") if session.auth_method == "email_code" else ("pwd",)
    if session.verified_by == "passkey" and session.verified_at is not None:
        acr = None if policy.on_hold(session.verified_hold_until, now) else _acr(session.verified_synced)
        return Proof(session.verified_at, (*amr[:2], _key_method(session.verified_synced), "user", "mfa"), acr)
    return Proof(login_time, amr, None)


def satisfies(acr: str | None, wanted: tuple[str, ...]) -> bool:
    """Whether a login's acr meets any of the values asked for (phrh meets phr too)."""
    if not wanted:
        return True
    if acr == PHRH:
        return True
    return acr == PHR and PHR in wanted


def important_operations_allowed(amr: tuple[str, ...], acr: str | None, settings: Settings, now: datetime) -> bool:
    """policy.important_operations_reason, read from what a grant recorded: before the passkey date
    any login; from it, a passkey login (not a step-up) whose passkey was not on hold."""
    if not policy.passkeys_mandatory(settings, now):
        return True
    return bool(amr) and amr[0] in ("hwk", "swk") and acr is not None
