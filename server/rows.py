"""What the store hands back: one frozen, typed row per table, its fields in the table's column order.

A row is a plain value, read once: nothing tracks it, nothing writes it back. To change what the
database holds, call the store. (tests/test_rows.py checks each row's fields against its table.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    customer_code: str
    display_name: str
    email: str | None
    password_hash: str
    user_handle: bytes
    failed_logins: int
    locked_at: datetime | None
    held_at: datetime | None
    hold_reason: str | None
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    id_hash: str
    user_id: int | None
    state: str
    auth_method: str | None
    created_at: datetime
    last_seen_at: datetime
    authenticated_at: datetime | None
    verified_at: datetime | None
    verified_by: str | None
    login_hold_until: datetime | None
    verified_hold_until: datetime | None
    next_path: str | None
    ip: str | None
    user_agent: str | None
    login_synced: bool | None
    verified_synced: bool | None
    sid: str | None

    @property
    def customer_id(self) -> int:
        """The customer of a pending or logged-in session (only an anonymous one has none)."""
        if self.user_id is None:
            raise LookupError("an anonymous session has no customer")
        return self.user_id


@dataclass(frozen=True, slots=True)
class CustomerSession:
    """A logged-in session with what GET /api/session tells of its customer (one statement)."""

    session: SessionRow
    customer_code: str
    display_name: str
    passkey_count: int


@dataclass(frozen=True, slots=True)
class CodeRow:
    id: int
    session_id_hash: str
    user_id: int
    purpose: str
    code_hash: str
    sent_at: datetime
    expires_at: datetime
    wrong_attempts: int


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: int
    user_id: int
    token_hash: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int | None  # None for an event just written (its id is not read back)
    user_id: int | None
    kind: str
    created_at: datetime
    ip: str | None
    user_agent: str | None
    detail: str | None  # JSON


@dataclass(frozen=True, slots=True)
class WindowRow:
    key: str
    count: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CredentialRow:
    id: int
    user_id: int
    credential_id: bytes
    public_key: bytes
    algorithm: int
    sign_count: int
    aaguid: str
    transports: str
    backup_eligible: bool
    backup_state: bool
    name: str
    created_at: datetime
    last_used_at: datetime | None
    hold_until: datetime | None
    uv_initialized: bool


@dataclass(frozen=True, slots=True)
class CeremonyRow:
    challenge_hash: str
    kind: str
    session_id_hash: str
    user_id: int | None
    challenge: bytes
    expires_at: datetime
    conditional: bool = False


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    """A queued message a mail sender has taken (store.claim_mail)."""

    id: int
    to_addr: str
    message: str
    attempts: int


@dataclass(frozen=True, slots=True)
class ClientRow:
    """One of the broker's apps (OpenID Connect): its lists are JSON text as stored (oidc_clients.App reads them)."""

    client_id: str
    name: str
    secret_hash: str | None
    redirect_uris: str
    post_logout_redirect_uris: str
    backchannel_logout_uri: str | None
    require_passkey: bool
    scopes: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SigningKeyRow:
    kid: str
    alg: str
    public_jwk: str
    private_jwk: str  # encrypted
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class GrantRow:
    id: str
    client_id: str
    user_id: int
    sid: str
    scope: str
    auth_time: datetime
    amr: str
    acr: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuthorizationCodeRow:
    code_hash: str
    grant_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefreshTokenRow:
    token_hash: str
    grant_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class LogoutDeliveryRow:
    id: int | None
    client_id: str
    sid: str
    user_id: int
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    claimed_until: datetime | None
    delivered_at: datetime | None
    last_error: str | None


# --- the staff console --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaffRow:
    id: int
    name: str
    role: str  # support | admin
    user_handle: bytes
    created_at: datetime
    disabled_at: datetime | None
    enrolment_hash: str | None
    enrolment_expires_at: datetime | None
    code_issued_by: int | None


@dataclass(frozen=True, slots=True)
class StaffCredentialRow:
    id: int
    staff_id: int
    credential_id: bytes
    public_key: bytes
    sign_count: int
    aaguid: str
    backup_eligible: bool
    backup_state: bool
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class StaffCeremonyRow:
    challenge_hash: str
    kind: str  # enrol | login
    browser_hash: str
    staff_id: int | None
    challenge: bytes
    expires_at: datetime
    enrolment_hash: str | None = None


@dataclass(frozen=True, slots=True)
class StaffSessionRow:
    id_hash: str
    staff_id: int
    created_at: datetime
    last_seen_at: datetime
    ip: str | None


@dataclass(frozen=True, slots=True)
class StaffRequestRow:
    id: str
    action: str  # reset-passkeys | set-email
    user_id: int
    email: str | None
    reason: str
    requested_by: int
    requested_at: datetime
    expires_at: datetime
    approved_by: int | None
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int | None
    at: datetime
    staff: str
    role: str
    action: str
    customer_code: str | None
    reason: str | None
    ip: str | None
