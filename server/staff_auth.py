"""Staff enrolment and sign-in: passkeys only, checked by verify.py like the customers', kept in the
staff's own tables. A ceremony is bound to the browser by a random value in a cookie of its own
(only its hash is stored), taken once, void after 5 minutes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from . import audit, ceremonies, options, staff, store_staff, verify
from .context import Client, Context
from .db import Tx, commits_refusals
from .errors import CeremonyExpired, Conflict, PasskeyRejected
from .rows import StaffCeremonyRow, StaffCredentialRow, StaffRow


def _hash(value: bytes | str) -> str:
    return hashlib.sha256(value if isinstance(value, bytes) else value.encode()).hexdigest()


@dataclass(frozen=True)
class Begun:
    options: dict
    browser: str  # the ceremony cookie's value


@dataclass(frozen=True)
class SignedIn:
    member: StaffRow
    session_id: str  # the raw id for the staff cookie


def _new_ceremony(db: Tx, ctx: Context, *, kind: str, browser: str | None, staff_id: int | None,
                  enrolment_hash: str | None = None) -> tuple[bytes, str]:
    browser = browser if browser and len(browser) <= 64 else secrets.token_urlsafe(32)
    challenge = secrets.token_bytes(32)
    store_staff.add_ceremony(db, StaffCeremonyRow(challenge_hash=_hash(challenge), kind=kind,
                                                  browser_hash=_hash(browser), staff_id=staff_id, challenge=challenge,
                                                  expires_at=ctx.clock() + options.CEREMONY_TTL,
                                                  enrolment_hash=enrolment_hash))
    return challenge, browser


def _taken(db: Tx, ctx: Context, response, *, kind: str, browser: str | None) -> StaffCeremonyRow:
    challenge = response.response.client_data.challenge
    if not browser or not isinstance(challenge, bytes):
        raise CeremonyExpired(reason="no ceremony cookie or no challenge")
    ceremony = store_staff.take_ceremony(db, challenge_hash=_hash(challenge), browser_hash=_hash(browser), kind=kind)
    if ceremony is None or ctx.clock() >= ceremony.expires_at:
        raise CeremonyExpired(reason="unknown, used, expired, or another browser's challenge")
    return ceremony


# --- enrolment ---------------------------------------------------------------------------------


async def begin_enrolment(ctx: Context, *, name: str, code: str, browser: str | None) -> Begun:
    def begin(db: Tx) -> Begun:
        member = staff.enrolling(db, name, code, ctx.clock())
        challenge, cookie = _new_ceremony(db, ctx, kind="enrol", browser=browser, staff_id=member.id,
                                          enrolment_hash=member.enrolment_hash)
        # A reset removed every passkey and a first enrolment has none: nothing to exclude.
        return Begun(options.staff_registration(ctx.settings, member, (), challenge=challenge), cookie)

    return await ctx.db.run(begin)


async def complete_enrolment(ctx: Context, *, credential: Any, browser: str | None, client: Client) -> SignedIn:
    """The passkey registered, the enrolment code used up, a staff session started."""
    response = ceremonies.parse_response(verify.parse_registration, credential)

    def enrol(db: Tx) -> SignedIn:
        now = ctx.clock()
        ceremony = _taken(db, ctx, response, kind="enrol", browser=browser)
        member = store_staff.staff_by_id(db, ceremony.staff_id) if ceremony.staff_id else None
        if member is None or member.disabled_at is not None or ceremony.enrolment_hash is None:
            raise CeremonyExpired(reason="the member was disabled meanwhile")
        try:
            new = verify.verify_registration(response=response, expected_challenge=ceremony.challenge,
                                             expected_origins=ctx.settings.origins, rp_id=ctx.settings.rp_id)
        except verify.Rejected as exc:
            refusal = PasskeyRejected(status=400, reason=exc.detail, why=exc.reason)
            refusal.message_key = "passkey_registration_rejected"
            raise refusal from None
        # The code this ceremony began with, still the member's: not used meanwhile, nor replaced by a reset.
        if not store_staff.take_enrolment(db, member.id, ceremony.enrolment_hash):
            raise CeremonyExpired(reason="the enrolment code was used or replaced meanwhile")
        added = store_staff.add_credential(db, StaffCredentialRow(
            id=0, staff_id=member.id, credential_id=new.credential_id, public_key=new.public_key,
            sign_count=new.sign_count, aaguid=new.aaguid, backup_eligible=new.backup_eligible,
            backup_state=new.backup_state, created_at=now, last_used_at=None))
        if added is None:
            raise Conflict("credential_exists")
        audit.record(db, audit.Actor.staff(member, client.ip), "staff_enrolled", now=now)
        return SignedIn(member, staff.start_session(db, member, now=now, ip=client.ip))

    return await ctx.db.run(enrol)


# --- sign-in -------------------------------------------------------------------------------------


async def begin_login(ctx: Context, *, browser: str | None, client: Client) -> Begun:
    await ctx.throttle.turn_away_known(ip=client.ip, login_options=True)

    def begin(db: Tx) -> Begun:
        ctx.throttle.login_options(ip=client.ip, db=db)
        challenge, cookie = _new_ceremony(db, ctx, kind="login", browser=browser, staff_id=None)
        return Begun(options.staff_login(ctx.settings, challenge=challenge), cookie)

    return await ctx.db.run(begin)


async def complete_login(ctx: Context, *, credential: Any, browser: str | None, client: Client) -> SignedIn:
    await ctx.throttle.turn_away_known(ip=client.ip)
    response = ceremonies.parse_response(verify.parse_authentication, credential)
    return await ctx.db.run(_log_in, ctx, client, response, browser)


@commits_refusals  # the ceremony used up and the failure counted, whatever the answer
def _log_in(db: Tx, ctx: Context, client: Client, response, browser: str | None) -> SignedIn:
    ctx.throttle.check(ip=client.ip, db=db)
    ceremony = _taken(db, ctx, response, kind="login", browser=browser)
    found = store_staff.credential_with_staff(db, response.raw_id)
    handle = response.response.user_handle
    if found is None or handle is None or not secrets.compare_digest(handle, found[0].user_handle):
        # A customer's passkey is no staff passkey: it is simply not in this table.
        ctx.throttle.failed(ip=client.ip, db=db)
        raise PasskeyRejected(reason="not a staff passkey")
    member, stored = found
    now = ctx.clock()
    try:
        result = verify.verify_authentication(
            response=response, expected_challenge=ceremony.challenge, expected_origins=ctx.settings.origins,
            rp_id=ctx.settings.rp_id, public_key=stored.public_key, stored_sign_count=stored.sign_count,
            stored_backup_eligible=stored.backup_eligible)
    except verify.Rejected as exc:
        ctx.throttle.failed(ip=client.ip, db=db)
        raise PasskeyRejected(reason=exc.detail) from None
    if member.disabled_at is not None:
        raise PasskeyRejected(reason="this staff member is disabled")
    if not store_staff.step_counter(db, stored.id, old=stored.sign_count, new=result.sign_count,
                                    backup_state=result.backup_state, when=now):
        raise PasskeyRejected(reason="the sign counter moved during this sign-in")
    audit.record(db, audit.Actor.staff(member, client.ip), "staff_signed_in", now=now)
    return SignedIn(member, staff.start_session(db, member, now=now, ip=client.ip))
