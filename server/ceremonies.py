"""Passkey ceremonies around python-fido2's Fido2Server, with their state in the database.

Each ceremony's challenge is 32 random bytes, stored server-side in a `Ceremony` row bound to the
browser session that asked, valid for 5 minutes, and taken (deleted as it is read) when the
response comes back: a replay, or a second parallel verify of the same response, finds nothing.
The checks of the response itself are in verify.py.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fido2.utils import websafe_encode

from . import devices, metrics, notices, options, passkeys, policy, sessions, stepup, store, verify
from .context import Client, Context
from .db import Tx, commits_refusals
from .errors import (AccountLocked, CeremonyExpired, Conflict, InvalidRequest, PasskeyRejected,
                     UnknownCredential)
from .login import DEFAULT_REDIRECT, LoginStep, safe_next
from .rows import CeremonyRow, CredentialRow, SessionRow
from .store_batch import Batch, Statement, Writer, write_together

CEREMONY_TTL = options.CEREMONY_TTL
LOGIN_CEREMONIES_KEPT = 3  # per browser session: the newest login options stay answerable


def _challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _store_ceremony(db: Writer, ctx: Context, *, kind: str, session_id_hash: str, user_id: int | None,
                    conditional: bool = False) -> bytes:
    challenge = secrets.token_bytes(32)
    store.add_ceremony(db, CeremonyRow(challenge_hash=_challenge_hash(challenge), kind=kind,
                                    session_id_hash=session_id_hash, user_id=user_id, challenge=challenge,
                                    expires_at=ctx.clock() + CEREMONY_TTL, conditional=conditional))
    return challenge


async def _take(ctx: Context, *, challenge: bytes, session_id_hash: str | None, kind: str,
                user_id: int | None = None) -> CeremonyRow:
    """The ceremony this response answers, used up now; or 400 ceremony_expired."""
    if not session_id_hash or not isinstance(challenge, bytes):
        raise CeremonyExpired(reason="no session or no challenge")
    taken = await ctx.db.run(store.take_ceremony, challenge_hash=_challenge_hash(challenge),
                             session_id_hash=session_id_hash, kind=kind)
    return _check_ceremony(ctx, taken, user_id=user_id)


def parse_response(parse, data: Any):
    """A WebAuthn response through verify's parser; what cannot be parsed is 400 invalid_request
    (also the staff ceremonies')."""
    try:
        return parse(data)
    except verify.Malformed as exc:
        raise InvalidRequest(reason=str(exc)) from None


# --- registration ----------------------------------------------------------------------------


async def begin_registration(ctx: Context, *, session: SessionRow, security_key: bool = False,
                             conditional: bool = False) -> dict:
    """security_key: the management page's "Add a security key": a roaming key, not this device.
    conditional: the automatic upgrade right after a code login (a conditional create, WebAuthn L3):
    the ceremony remembers it, since only its answer may come without user presence."""
    def begin(db: Tx) -> dict:
        user = sessions.customer_of(db, session)
        if not user.email:
            raise Conflict("email_required")
        existing = store.credentials_of(db, user.id)
        # Checked here: a registration ceremony is only ever issued inside the step-up window (and,
        # from the passkey date, to a customer with a passkey only after a passkey step-up).
        stepup.require_passkey_change_allowed(session, ctx.settings, ctx.clock(), has_passkey=bool(existing))
        if (full := passkeys.limit_refusal(len(existing), ctx.settings)) is not None:
            raise full
        challenge = _store_ceremony(db, ctx, kind="registration", session_id_hash=session.id_hash, user_id=user.id,
                                    conditional=conditional)
        return options.registration(ctx.settings, user, existing, challenge=challenge, security_key=security_key,
                                    conditional=conditional)

    return await ctx.db.run(begin)


async def complete_registration(ctx: Context, *, session: SessionRow, credential: Any, name: str | None,
                                client: Client) -> passkeys.PasskeyView:
    response = parse_response(verify.parse_registration, credential)
    ceremony = await _take(ctx, challenge=response.response.client_data.challenge, session_id_hash=session.id_hash,
                           kind="registration", user_id=session.user_id)
    try:
        new = verify.verify_registration(response=response, expected_challenge=ceremony.challenge,
                                         expected_origins=ctx.settings.webauthn_origins, rp_id=ctx.settings.rp_id,
                                         conditional=ceremony.conditional)
    except verify.Rejected as exc:
        await ctx.db.run(notices.record, ctx, "passkey_registration_rejected", session.user_id, client,
                         reason=exc.reason)
        refusal = PasskeyRejected(status=400, reason=exc.detail, why=exc.reason)
        refusal.message_key = "passkey_registration_rejected"
        raise refusal from None
    transports = verify.transports_of(credential)

    def save(db: Tx) -> passkeys.PasskeyView:
        now = ctx.clock()
        user = sessions.customer_of(db, session)
        # One customer at a time: six parallel registrations must not all see "four so far".
        store.lock_user_row(db, user.id)
        existing = store.credentials_of(db, user.id)
        if (full := passkeys.limit_refusal(len(existing), ctx.settings)) is not None:
            raise full
        chosen = passkeys.clean_name(name) if name else None
        hold_until = policy.new_passkey_hold(session, ctx.settings, now)
        row = store.add_credential(
            db, user_id=user.id, credential_id=new.credential_id, public_key=new.public_key,
            algorithm=new.algorithm, sign_count=new.sign_count, aaguid=new.aaguid, transports=",".join(transports),
            backup_eligible=new.backup_eligible, backup_state=new.backup_state, created_at=now,
            hold_until=hold_until, uv_initialized=new.user_verified,
            name=chosen or passkeys.default_name(new.aaguid, transports, {c.name for c in existing}, client.lang))
        if row is None:  # the UNIQUE index: registered already (by anyone, a moment ago too)
            raise Conflict("credential_exists")
        view = passkeys.view(row, now)
        # A remembered PC skips the code: whoever added a passkey must not also keep that (security.md 23, 40).
        devices.forget_all(db, user.id)
        notices.passkey_added(db, ctx, user, view.name, view.provider, client, now, hold_until=hold_until,
                              automatic=ceremony.conditional)
        return view

    with metrics.CEREMONY_SECONDS.labels("registration").time():
        view = await ctx.db.run(save)
    ctx.outbox.wake()
    return view


# --- authentication: "log in with passkey" and passkey step-up -------------------------------


@dataclass(frozen=True)
class AuthenticationOptions:
    options: dict
    new_session_id: str | None  # set when the browser had no session: the cookie to give it


async def begin_login(ctx: Context, *, session_id_hash: str | None, next_path: str | None,
                      client: Client) -> AuthenticationOptions:
    """Usernameless: empty allowCredentials; the authenticator offers the customer's passkeys.

    Anyone may ask, and each ask without a session writes a session and a ceremony (security.md
    §37): every ask counts against its address's options limit, refused before anything is
    written; a browser that asks again keeps only its newest few login ceremonies; the sweep
    (app.py) removes the rest once they expire."""
    await ctx.throttle.turn_away_known(ip=client.ip, login_options=True)

    def begin(db: Tx) -> AuthenticationOptions:
        ctx.throttle.login_options(ip=client.ip, db=db)
        now = ctx.clock()
        row = sessions.load(db, session_id_hash, now=now, settings=ctx.settings) if session_id_hash else None
        new_id = None
        batch = Batch()  # the session (or the older asks pruned) and the ceremony: one statement
        if row is None:
            # The challenge must be bound to a browser: give this one an anonymous session.
            made = sessions.create(batch, now=now, state=sessions.ANONYMOUS, user=None,
                                   next_path=safe_next(next_path), ip=client.ip, user_agent=client.user_agent)
            row, new_id = made.row, made.raw_id
        else:
            # The login page asks more than once (autofill, then the button): the older asks stay
            # answerable, but one cookie looping cannot pile up rows.
            store.keep_newest_ceremonies(batch, session_id_hash=row.id_hash, kind="login",
                                         keep=LOGIN_CEREMONIES_KEPT - 1)
            # This browser was here before (another login page, another app's request): where
            # this login lands is where the newest ask says.
            wanted = safe_next(next_path)
            if wanted and wanted != row.next_path:
                store.set_next_path(batch, row.id_hash, wanted)
        challenge = _store_ceremony(batch, ctx, kind="login", session_id_hash=row.id_hash, user_id=None)
        write_together(db, batch)
        public_key = {**options.login(ctx.settings.rp_id, ctx.settings.rp_name), "challenge": websafe_encode(challenge),
                      "allowCredentials": []}
        return AuthenticationOptions({"publicKey": public_key}, new_id)

    return await ctx.db.run(begin)


async def begin_step_up(ctx: Context, *, session: SessionRow) -> dict:
    def begin(db: Tx) -> dict:
        mine = store.credentials_of(db, session.customer_id)
        if not mine:
            raise Conflict("no_passkey")
        challenge = _store_ceremony(db, ctx, kind="step_up", session_id_hash=session.id_hash,
                                    user_id=session.user_id)
        return options.step_up(ctx.settings, mine, challenge=challenge)

    return await ctx.db.run(begin)


async def complete_login(ctx: Context, *, session_id_hash: str | None, credential: Any,
                         client: Client) -> LoginStep:
    """One transaction: take the ceremony, find the passkey, check the signature, count the use,
    make the session, queue the notice. A refusal after the ceremony was taken commits what it
    leaves behind (the ceremony used up, the failure counted) and is raised after the commit.

    (It was two transactions with the signature checked between them. On SQLite's single database
    thread nothing runs beside a transaction anyway, and each hand-over between the event loop and
    that thread costs system calls and thread wake-ups that, on the benchmark, cost more than the
    signature check.)"""
    # (web/api.py has already turned away an address known to be over its limit, before the body.)
    try:
        response = parse_response(verify.parse_authentication, credential)
    except InvalidRequest:
        await count_malformed(ctx, client)
        raise
    challenge = _challenge_of(response, session_id_hash)
    with metrics.CEREMONY_SECONDS.labels("login").time():
        step = await ctx.db.run(_log_in, ctx, client, response, challenge=challenge,
                                session_id_hash=session_id_hash)
    ctx.outbox.wake()
    return step


@commits_refusals  # the ceremony used up, the failure counted and recorded
def _log_in(db: Tx, ctx: Context, client: Client, response, *, challenge: bytes,
            session_id_hash: str) -> LoginStep:
    ctx.throttle.check(ip=client.ip, db=db)  # over the limit: nothing is taken
    try:
        verify.check_credential_id(response.raw_id)  # never stored, so never looked up either
    except verify.Rejected as exc:
        _check_ceremony(ctx, store.take_ceremony(db, challenge_hash=_challenge_hash(challenge),
                                                 session_id_hash=session_id_hash, kind="login"))
        _count_failure(db, ctx, None, client, exc.reason)
        raise PasskeyRejected(reason=exc.detail) from None
    taken, found = store.take_ceremony_and_credential(db, challenge_hash=_challenge_hash(challenge),
                                                      session_id_hash=session_id_hash, kind="login",
                                                      credential_id=response.raw_id)
    ceremony = _check_ceremony(ctx, taken)
    if found is None:
        _count_failure(db, ctx, None, client, "unknown_credential")
        # Definitely unknown (not a transient error): the page may ask the browser to forget it.
        raise UnknownCredential(credential_id=websafe_encode(response.raw_id), reason="no such credential")
    owner, stored = found
    # Usernameless: the user handle is how the authenticator says whose passkey this is.
    handle = response.response.user_handle
    if handle is None or not secrets.compare_digest(handle, owner.user_handle):
        _count_failure(db, ctx, owner.id, client, "user_handle")
        raise PasskeyRejected(reason="userHandle missing or not the credential's owner")
    now = ctx.clock()
    result = _verified(db, ctx, response, ceremony, stored, owner, client, now)
    if owner.held_at is not None:
        # Only now, after the assertion was verified: a credential ID alone must not reveal the
        # hold. The automatic lock (locked_at) closes the password path only: a passkey cannot be
        # guessed, and ten wrong passwords must not shut out a passkey customer (security.md 31).
        notices.record(db, ctx, "login_refused", owner.id, client, method="passkey", reason="account_held")
        refusal = AccountLocked(reason="passkey login to an account under a support hold")
        refusal.message_key = "account_held"
        raise refusal
    # All of the login is written at once, and only if the sign counter is still the one verified
    # against: the session that asked goes (a new id at login; where it was headed comes back),
    # the new session, the failures reset, the event, the notice.
    batch = Batch()
    store.end_session_for_next(batch, session_id_hash)
    new = sessions.create(batch, now=now, state=sessions.ACTIVE, user=owner, auth_method="passkey", verified=True,
                          ip=client.ip, user_agent=client.user_agent, hold_until=stored.hold_until,
                          synced=stored.backup_eligible)
    notices.logged_in(batch, ctx, owner, "passkey", client, now)
    written = write_together(db, batch, gates=[_counter_step(stored, result, now)])
    if not written.made:
        _count_failure(db, ctx, owner.id, client, "counter_raced")
        raise PasskeyRejected(reason="the sign counter moved during this login")
    next_path = written.values[0]
    return LoginStep("ok", new.raw_id, redirect=next_path or DEFAULT_REDIRECT)


async def complete_step_up(ctx: Context, *, session: SessionRow, credential: Any, client: Client) -> stepup.SteppedUp:
    """One transaction, like complete_login."""
    await ctx.throttle.turn_away_known(ip=client.ip)
    response = parse_response(verify.parse_authentication, credential)
    challenge = _challenge_of(response, session.id_hash)
    with metrics.CEREMONY_SECONDS.labels("step_up").time():
        return await ctx.db.run(_step_up, ctx, client, session, response, challenge=challenge)


@commits_refusals  # the ceremony used up, the failure counted and recorded
def _step_up(db: Tx, ctx: Context, client: Client, session: SessionRow, response, *,
             challenge: bytes) -> stepup.SteppedUp:
    ctx.throttle.check(ip=client.ip, db=db)  # over the limit: nothing is taken
    ceremony = _check_ceremony(ctx, store.take_ceremony(db, challenge_hash=_challenge_hash(challenge),
                                                        session_id_hash=session.id_hash, kind="step_up"),
                               user_id=session.user_id)
    found = store.credential_with_owner(db, response.raw_id)
    handle = response.response.user_handle
    if found is None or found[0].id != session.user_id or (
            handle is not None and not secrets.compare_digest(handle, found[0].user_handle)):
        # Another customer's passkey, or none we know: answered like a bad signature.
        _count_failure(db, ctx, session.user_id, client, "not_this_customers_passkey", step_up=True)
        raise PasskeyRejected(reason="the passkey does not belong to this session's customer")
    owner, stored = found
    now = ctx.clock()
    result = _verified(db, ctx, response, ceremony, stored, owner, client, now, step_up=True)
    batch = Batch()
    stepped = stepup.stepped_up(batch, ctx, session, "passkey", client, hold_until=stored.hold_until,
                                synced=stored.backup_eligible)
    if not write_together(db, batch, gates=[_counter_step(stored, result, now)]).made:
        _count_failure(db, ctx, owner.id, client, "counter_raced", step_up=True)
        raise PasskeyRejected(reason="the sign counter moved during this step-up")
    return stepped


def _challenge_of(response, session_id_hash: str | None) -> bytes:
    challenge = response.response.client_data.challenge
    if not session_id_hash or not isinstance(challenge, bytes):
        raise CeremonyExpired(reason="no session or no challenge")
    return challenge


def _check_ceremony(ctx: Context, ceremony: CeremonyRow | None, *, user_id: int | None = None) -> CeremonyRow:
    """The taken ceremony must exist, be young enough, and (for step-up) be this customer's."""
    if ceremony is None:
        raise CeremonyExpired(reason="unknown, used, or another session's challenge")
    if ctx.clock() >= ceremony.expires_at:
        raise CeremonyExpired(reason="challenge older than 5 minutes")
    if user_id is not None and ceremony.user_id != user_id:
        raise CeremonyExpired(reason="challenge issued to another customer")
    return ceremony


def _verified(db: Tx, ctx: Context, response, ceremony: CeremonyRow, stored: CredentialRow, owner, client: Client,
              now, *, step_up: bool = False) -> verify.VerifiedAssertion:
    """Signature, flags and counter (verify.py); a failure is recorded in db's transaction and raised."""
    try:
        return verify.verify_authentication(
            response=response, expected_challenge=ceremony.challenge, expected_origins=ctx.settings.webauthn_origins,
            rp_id=ctx.settings.rp_id, public_key=stored.public_key, stored_sign_count=stored.sign_count,
            stored_backup_eligible=stored.backup_eligible, uv_initialized=stored.uv_initialized)
    except verify.Rejected as exc:
        if exc.reason == "counter":
            received = response.response.authenticator_data.counter
            notices.clone_suspected(db, ctx, owner, stored.name, stored.sign_count, received, client, now)
        _count_failure(db, ctx, owner.id, client, exc.reason, step_up=step_up)
        raise PasskeyRejected(reason=exc.detail) from None


def _counter_step(stored: CredentialRow, result: verify.VerifiedAssertion, now: datetime) -> Statement:
    """The gate of a passkey's use: its sign counter moved on from the value verified against."""
    return store.gate_sign_counter(stored.id, old_count=stored.sign_count, new_count=result.sign_count,
                                   backup_state=result.backup_state,
                                   uv_initialized=stored.uv_initialized or result.user_verified, when=now)


async def count_malformed(ctx: Context, client: Client) -> None:
    """A login response no browser would send counts as a failed sign-in of its address: a flood
    of junk is soon refused from memory, like a flood of guesses."""
    def count(db: Tx) -> None:
        ctx.throttle.check(ip=client.ip, db=db)  # over the limit already: the answer is 429, not 400
        ctx.throttle.failed(ip=client.ip, db=db)

    await ctx.db.run(count)


def _count_failure(db: Tx, ctx: Context, user_id: int | None, client: Client, reason: str, *,
                   step_up: bool = False) -> None:
    """A failed passkey sign-in: counted against the address, recorded as an event."""
    ctx.throttle.failed(ip=client.ip, db=db)
    notices.record(db, ctx, "step_up_failed" if step_up else "login_failed", user_id, client, method="passkey",
                   reason=reason)
    if not step_up:
        metrics.SIGN_INS.labels("passkey", "failed").inc()
