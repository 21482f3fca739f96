"""The tables, declared with SQLModel: no queries here (those live in store.py and its siblings)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Boolean, Column, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint, false, text, true)
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, SQLModel


class _SQLiteUTC(sqlite.DATETIME):
    """How SQLite keeps a UTC datetime: as text in SQLAlchemy's own format ("2026-12-05
    01:02:03.456789", so its comparisons and the rows already stored stay as they are), written
    with isoformat and read with fromisoformat, aware UTC in and out in one function each way:
    a quarter of the cost of the general processors wrapped in a TypeDecorator's, for the dozens
    of datetimes each login writes and reads (the columns take it as their SQLite variant, `_when`)."""

    def bind_processor(self, dialect):
        def process(value):
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")
        return process

    def result_processor(self, dialect, coltype):
        def process(value):
            return None if value is None else datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        return process


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out (the migrations name it; on SQLite the
    columns use `_SQLiteUTC` directly, see `_when`)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return _SQLiteUTC() if dialect.name == "sqlite" else dialect.type_descriptor(self.impl)

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name == "sqlite":  # _SQLiteUTC does it all
            return value
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None or dialect.name == "sqlite":
            return value
        return value.astimezone(timezone.utc)


def _when(nullable: bool = False, index: bool = False):
    column_type = UTCDateTime().with_variant(_SQLiteUTC(), "sqlite")
    return Field(sa_column=Column(column_type, nullable=nullable, index=index))


def _user_fk(nullable: bool = False):
    return Field(
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=nullable, index=True)
    )


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    customer_code: str = Field(sa_column=Column(String(20), nullable=False, unique=True))
    display_name: str = Field(sa_column=Column(String(100), nullable=False))
    email: str | None = Field(default=None, sa_column=Column(String(254), nullable=True))
    password_hash: str = Field(sa_column=Column(String(200), nullable=False))
    # WebAuthn user.id: random, never personal data (WebAuthn §14.6.1).
    user_handle: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    failed_logins: int = Field(default=0)
    # The automatic lock: password sign-in stops after too many failures; passkeys still work.
    locked_at: datetime | None = _when(nullable=True)
    # The support desk's hold on a suspected takeover: every sign-in stops, passkeys included.
    held_at: datetime | None = _when(nullable=True)
    hold_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    created_at: datetime = _when()
    last_login_at: datetime | None = _when(nullable=True)


class Session(SQLModel, table=True):
    """A browser session: "anonymous" (holds a passkey-login ceremony), "pending" (between password
    and code), "active" (logged in)."""

    __tablename__ = "sessions"

    # SHA-256 of the cookie's random id: a leaked table gives no live session.
    id_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: int | None = _user_fk(nullable=True)
    state: str = Field(sa_column=Column(String(10), nullable=False))
    auth_method: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    created_at: datetime = _when()
    last_seen_at: datetime = _when()
    authenticated_at: datetime | None = _when(nullable=True)
    verified_at: datetime | None = _when(nullable=True)
    # How the last verification was made (email_code | passkey): after the passkey date only a
    # passkey counts for important operations.
    verified_by: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    # The hold of the passkey this session logged in with, and of the one its last step-up used,
    # as they were then (see Credential.hold_until): a passkey that is deleted later must not take
    # its hold with it. `tobira user release-hold` clears them with the passkeys' own.
    login_hold_until: datetime | None = _when(nullable=True)
    verified_hold_until: datetime | None = _when(nullable=True)
    next_path: str | None = Field(default=None, sa_column=Column(String(1024), nullable=True))  # sessions.NEXT_MAX
    ip: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    user_agent: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    # Whether the passkey of the login, and of the last step-up, was a synced one (backup
    # eligible) or bound to its authenticator: OpenID Connect tells apps which (amr swk/hwk, acr
    # phr/phrh). None: not made with a passkey.
    login_synced: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    verified_synced: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    # The session's id for OpenID Connect (`sid`, back-channel logout): random, kept when a
    # step-up replaces the cookie's id, so an app's logout still finds it.
    sid: str | None = Field(default=None, sa_column=Column(String(43), nullable=True, index=True))


class OneTimeCode(SQLModel, table=True):
    """The e-mailed 6-digit code, bound to one browser session and one purpose; at most one live."""

    __tablename__ = "one_time_codes"
    __table_args__ = (UniqueConstraint("session_id_hash", "purpose"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id_hash: str = Field(
        sa_column=Column(String(64), ForeignKey("sessions.id_hash", ondelete="CASCADE"), nullable=False)
    )
    user_id: int = _user_fk()
    purpose: str = Field(sa_column=Column(String(10), nullable=False))  # "login" | "step_up"
    code_hash: str = Field(sa_column=Column(String(64), nullable=False))
    sent_at: datetime = _when()
    expires_at: datetime = _when()
    wrong_attempts: int = Field(default=0)


class TrustedDevice(SQLModel, table=True):
    """"Remember this PC": a browser allowed to skip the one-time code until `expires_at`."""

    __tablename__ = "trusted_devices"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _user_fk()
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = _when()
    expires_at: datetime = _when()
    last_used_at: datetime | None = _when(nullable=True)
    user_agent: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))


class SecurityEvent(SQLModel, table=True):
    __tablename__ = "security_events"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = _user_fk(nullable=True)
    kind: str = Field(sa_column=Column(String(40), nullable=False))
    created_at: datetime = _when(index=True)
    ip: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    user_agent: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON, no secrets


class OutboxMail(SQLModel, table=True):
    """Mail waiting to be sent. Written in the same transaction as what it reports: a crash loses none."""

    __tablename__ = "mail_outbox"
    # The sender looks for unsent mail many times a second; sent rows pile up until the sweep
    # removes them. Without this index each look scanned them all (and, on SQLite, under the
    # write lock the web workers wait for): a long benchmark run slowed down as the table grew.
    __table_args__ = (Index("ix_mail_outbox_unsent", "id", sqlite_where=text("sent_at IS NULL"),
                            postgresql_where=text("sent_at IS NULL")),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_column=Column(String(30), nullable=False))
    to_addr: str = Field(sa_column=Column(String(254), nullable=False))
    message: str = Field(sa_column=Column(Text, nullable=False))  # RFC 5322 text
    created_at: datetime = _when()
    next_attempt_at: datetime = _when(index=True)
    attempts: int = Field(default=0)
    claimed_until: datetime | None = _when(nullable=True)
    claim_token: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    sent_at: datetime | None = _when(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))


class RateLimitWindow(SQLModel, table=True):
    """One fixed window of the `limits` library (its count and when it ends), shared by every instance."""

    __tablename__ = "rate_limits"

    key: str = Field(sa_column=Column(String(200), primary_key=True))
    count: int = Field(default=0)
    expires_at: datetime = _when(index=True)


class Credential(SQLModel, table=True):
    """A passkey: its public key and what we know of the authenticator that holds it."""

    __tablename__ = "credentials"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _user_fk()
    # UNIQUE across all customers: a second registration of the same ID fails even in a race.
    credential_id: bytes = Field(sa_column=Column(LargeBinary(1023), nullable=False, unique=True))
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # COSE_Key
    algorithm: int = Field(sa_column=Column(Integer, nullable=False))
    sign_count: int = Field(sa_column=Column(BigInteger, nullable=False))  # uint32 overflows INTEGER
    aaguid: str = Field(sa_column=Column(String(36), nullable=False))
    transports: str = Field(default="", sa_column=Column(String(100), nullable=False))  # comma-separated
    backup_eligible: bool = Field(sa_column=Column(Boolean, nullable=False))
    backup_state: bool = Field(sa_column=Column(Boolean, nullable=False))
    name: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = _when()
    last_used_at: datetime | None = _when(nullable=True)
    # Registered from a session a phishing proxy could hold (an e-mailed code, a remembered PC, a
    # passkey itself on hold): until then it does not count as passkey-verified for important
    # operations once passkeys are mandatory. None: not held.
    hold_until: datetime | None = _when(nullable=True)
    # WebAuthn L3's uvInitialized: a passkey made by an automatic upgrade (a conditional create) may
    # have been made without user verification; it signs nothing in until a use with UV=1 sets this.
    uv_initialized: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=true()))


class Ceremony(SQLModel, table=True):
    """Server-side state of one WebAuthn ceremony, keyed by its challenge's hash and taken once."""

    __tablename__ = "ceremonies"

    challenge_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    kind: str = Field(sa_column=Column(String(20), nullable=False))  # registration | login | step_up
    session_id_hash: str = Field(
        sa_column=Column(String(64), ForeignKey("sessions.id_hash", ondelete="CASCADE"), nullable=False, index=True)
    )
    user_id: int | None = _user_fk(nullable=True)
    challenge: bytes = Field(sa_column=Column(LargeBinary(64), nullable=False))
    expires_at: datetime = _when(index=True)
    # Issued as a conditional create (the automatic upgrade after a code login): only its answer may
    # come without user presence. clientDataJSON does not say so; the server has to remember it.
    conditional: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))


class OAuthClient(SQLModel, table=True):
    """One of the broker's own apps that signs its customers in through Tobira (OpenID Connect)."""

    __tablename__ = "oauth_clients"

    client_id: str = Field(sa_column=Column(String(43), primary_key=True))
    name: str = Field(sa_column=Column(String(100), nullable=False))
    # SHA-256 of the secret (256 random bits: no password hashing needed); None: a public client.
    secret_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    redirect_uris: str = Field(sa_column=Column(Text, nullable=False))  # JSON list, matched exactly
    post_logout_redirect_uris: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    backchannel_logout_uri: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    require_passkey: bool = Field(sa_column=Column(Boolean, nullable=False))
    scopes: str = Field(sa_column=Column(String(200), nullable=False))  # the scopes it may ask for
    created_at: datetime = _when()


class SigningKey(SQLModel, table=True):
    """A key that signs ID tokens and access tokens; every instance reads the same ones."""

    __tablename__ = "signing_keys"
    # One key in use per algorithm: two instances starting at once cannot both make one (the
    # second's insert fails, and it reads the first's; oidc_keys.KeyRing).
    __table_args__ = (Index("ix_signing_keys_in_use", "alg", unique=True, sqlite_where=text("retired_at IS NULL"),
                            postgresql_where=text("retired_at IS NULL")),)

    kid: str = Field(sa_column=Column(String(64), primary_key=True))
    alg: str = Field(sa_column=Column(String(10), nullable=False))
    public_jwk: str = Field(sa_column=Column(Text, nullable=False))
    private_jwk: str = Field(sa_column=Column(Text, nullable=False))  # encrypted (oidc_keys.py)
    created_at: datetime = _when()
    # Rotated out: signs nothing new, stays in the JWKS until the tokens it signed have expired.
    retired_at: datetime | None = _when(nullable=True)


class OAuthGrant(SQLModel, table=True):
    """What one authorization gave one app for one customer, in one session: its code, tokens and
    refresh tokens hang on it, and end with it (revoked_at)."""

    __tablename__ = "oauth_grants"

    id: str = Field(sa_column=Column(String(43), primary_key=True))
    client_id: str = Field(sa_column=Column(String(43), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"),
                                            nullable=False, index=True))
    user_id: int = _user_fk()
    sid: str = Field(sa_column=Column(String(43), nullable=False, index=True))  # the session's (sessions.sid)
    scope: str = Field(sa_column=Column(String(200), nullable=False))
    auth_time: datetime = _when()
    amr: str = Field(sa_column=Column(String(50), nullable=False))  # space-separated
    acr: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    created_at: datetime = _when()
    revoked_at: datetime | None = _when(nullable=True)


class OAuthCode(SQLModel, table=True):
    """An authorization code: single use, a minute long; a second use revokes its grant."""

    __tablename__ = "oauth_codes"

    code_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    grant_id: str = Field(sa_column=Column(String(43), ForeignKey("oauth_grants.id", ondelete="CASCADE"),
                                           nullable=False, index=True))
    redirect_uri: str = Field(sa_column=Column(Text, nullable=False))
    code_challenge: str = Field(sa_column=Column(String(128), nullable=False))  # S256 only
    nonce: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    expires_at: datetime = _when(index=True)
    used_at: datetime | None = _when(nullable=True)


class RefreshToken(SQLModel, table=True):
    """A refresh token (offline_access): a new one at each use; a used one presented again is a
    stolen copy, and its grant (the whole family) is revoked."""

    __tablename__ = "oauth_refresh_tokens"

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    grant_id: str = Field(sa_column=Column(String(43), ForeignKey("oauth_grants.id", ondelete="CASCADE"),
                                           nullable=False, index=True))
    created_at: datetime = _when()
    expires_at: datetime = _when(index=True)
    used_at: datetime | None = _when(nullable=True)


class LogoutDelivery(SQLModel, table=True):
    """A back-channel logout token owed to an app: queued in the transaction that ended the session
    (like the outbox), sent and retried by the logout sender until delivered or given up."""

    __tablename__ = "logout_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(sa_column=Column(String(43), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"),
                                            nullable=False))
    sid: str = Field(sa_column=Column(String(43), nullable=False))
    user_id: int = _user_fk()
    created_at: datetime = _when()
    next_attempt_at: datetime = _when(index=True)
    attempts: int = Field(default=0)
    claimed_until: datetime | None = _when(nullable=True)
    delivered_at: datetime | None = _when(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))


# --- the staff console: staff are not customers ---------------------------------------------------


def _staff_fk(nullable: bool = False, ondelete: str = "CASCADE"):
    return Field(sa_column=Column(Integer, ForeignKey("staff.id", ondelete=ondelete), nullable=nullable, index=True))


class Staff(SQLModel, table=True):
    """A support-desk agent or an admin: passkey-only, never a customer."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    role: str = Field(sa_column=Column(String(10), nullable=False))  # support | admin
    user_handle: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    created_at: datetime = _when()
    disabled_at: datetime | None = _when(nullable=True)
    # The one-time enrolment code (shown once by `tobira staff add` / `reset-passkeys`), hashed.
    enrolment_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    enrolment_expires_at: datetime | None = _when(nullable=True)
    # The admin who was shown the current enrolment code (None: the CLI). Whoever holds a code can
    # enrol as that member, so that admin never counts as a second person for them (support.approve).
    code_issued_by: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("staff.id"), nullable=True))


class StaffCredential(SQLModel, table=True):
    """A staff member's passkey. A table of its own: a customer's passkey signs no staff in."""

    __tablename__ = "staff_credentials"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = _staff_fk()
    credential_id: bytes = Field(sa_column=Column(LargeBinary(1023), nullable=False, unique=True))
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sign_count: int = Field(sa_column=Column(BigInteger, nullable=False))
    aaguid: str = Field(sa_column=Column(String(36), nullable=False))
    backup_eligible: bool = Field(sa_column=Column(Boolean, nullable=False))
    backup_state: bool = Field(sa_column=Column(Boolean, nullable=False))
    created_at: datetime = _when()
    last_used_at: datetime | None = _when(nullable=True)


class StaffCeremony(SQLModel, table=True):
    """A staff enrolment or sign-in ceremony, bound to the browser by a cookie of its own."""

    __tablename__ = "staff_ceremonies"

    challenge_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    kind: str = Field(sa_column=Column(String(10), nullable=False))  # enrol | login
    browser_hash: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    staff_id: int | None = _staff_fk(nullable=True)
    challenge: bytes = Field(sa_column=Column(LargeBinary(64), nullable=False))
    expires_at: datetime = _when(index=True)
    # An enrolment completes only with the code it began with (a reset in between voids it).
    enrolment_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class StaffSession(SQLModel, table=True):
    """A staff member's session: its own cookie, 15 minutes idle, 8 hours at most."""

    __tablename__ = "staff_sessions"

    id_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    staff_id: int = _staff_fk()
    created_at: datetime = _when()
    last_seen_at: datetime = _when()
    ip: str | None = Field(default=None, sa_column=Column(String(45), nullable=True))


class StaffRequest(SQLModel, table=True):
    """One of the two actions a social engineer wants (reset passkeys, change the e-mail), requested
    by one staff member and done only when a second approves within the hour."""

    __tablename__ = "staff_requests"

    id: str = Field(sa_column=Column(String(22), primary_key=True))
    action: str = Field(sa_column=Column(String(20), nullable=False))
    user_id: int = _user_fk()
    email: str | None = Field(default=None, sa_column=Column(String(254), nullable=True))
    reason: str = Field(sa_column=Column(String(200), nullable=False))
    requested_by: int = _staff_fk()
    requested_at: datetime = _when()
    expires_at: datetime = _when()
    approved_by: int | None = _staff_fk(nullable=True)
    done_at: datetime | None = _when(nullable=True, index=True)


class AuditEntry(SQLModel, table=True):
    """Who did what to whom, why and from where. Rows are only ever added: the migration gives the
    table triggers that refuse UPDATE and DELETE, so no staff member (nor a bug) can change one."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when(index=True)
    staff: str = Field(sa_column=Column(String(64), nullable=False, index=True))  # a name, or cli:<OS user>
    role: str = Field(sa_column=Column(String(10), nullable=False))  # support | admin | cli
    action: str = Field(sa_column=Column(String(30), nullable=False, index=True))
    customer_code: str | None = Field(default=None, sa_column=Column(String(20), nullable=True, index=True))
    reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    ip: str | None = Field(default=None, sa_column=Column(String(45), nullable=True))
