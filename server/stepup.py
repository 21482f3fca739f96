"""Step-up: a fresh verification before a sensitive action (adding or deleting a passkey, and
later the important operations). A code by e-mail, or a passkey of the same customer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from . import codes, notices, policy, sessions, store, store_codes
from .config import Settings
from .context import Client, Context
from .db import Tx, commits_refusals
from .errors import AccountLocked, CodeRejected, MailUnavailable, ResendTooSoon, StepUpRequired
from .mail import MailError
from .rows import SessionRow
from .store_batch import Batch, Writer, write_together


def require_step_up(session: SessionRow, settings: Settings, now: datetime, *, passkey: bool = False) -> None:
    """403 step_up_required unless the session was verified recently (passkey: with a passkey); its
    message asks for a passkey when an e-mailed code would not do."""
    if not policy.step_up_missing(session, settings, now, passkey=passkey):
        return
    error = StepUpRequired(reason="passkey step-up needed" if policy.fresh(session, settings, now) else "not fresh")
    if passkey:
        error.message_key = "step_up_passkey_required"
    raise error


def require_passkey_change_allowed(session: SessionRow, settings: Settings, now: datetime, *, has_passkey: bool) -> None:
    """Adding or deleting a passkey: a recent step-up, with a passkey where policy asks for one."""
    require_step_up(session, settings, now,
                    passkey=policy.passkey_changes_need_a_passkey(settings, now, has_passkey=has_passkey))


@dataclass(frozen=True)
class SteppedUp:
    session_id: str  # the new id for the cookie
    verified_at: datetime


def stepped_up(db: Writer, ctx: Context, session: SessionRow, method: str, client: Client, *,
               hold_until: datetime | None = None, synced: bool | None = None) -> SteppedUp:
    """Record a successful step-up: verified now, under a new session id.
    hold_until, synced: the hold of the passkey that stepped up, if any, and whether it is synced."""
    now = ctx.clock()
    new = sessions.rotate(db, session, now=now, verified_by=method, hold_until=hold_until, synced=synced)
    store.add_event(db, kind="step_up", when=now, user_id=session.user_id, ip=client.ip,
                    user_agent=client.user_agent, method=method)
    return SteppedUp(new.raw_id, now)


def _customer(db: Tx, session: SessionRow):
    user = sessions.customer_of(db, session)
    if policy.lock_state(user) != "no":  # the code path is what the automatic lock closes
        raise AccountLocked()
    return user


async def send_code(ctx: Context, *, session: SessionRow, client: Client) -> None:
    def issue(db: Tx):
        now = ctx.clock()
        user = _customer(db, session)
        wait = codes.resend_wait(store_codes.code_for(db, session.id_hash, "step_up", lock=True), now=now,
                                 resend_after=ctx.settings.code_resend_after)
        if wait:
            raise ResendTooSoon(retry_after=wait)
        ctx.throttle.code_mail(ip=client.ip, customer=user.customer_code, db=db)
        code = codes.issue(db, ctx.codes, session_id_hash=session.id_hash, user_id=user.id, purpose="step_up",
                           now=now, ttl=ctx.settings.code_ttl)
        store.add_event(db, kind="code_sent", when=now, user_id=user.id, ip=client.ip, user_agent=client.user_agent,
                        purpose="step_up")
        return code, user.email

    code, email = await ctx.db.run(issue)
    try:
        await notices.send_code(ctx, email=email, code=code, purpose="step_up", lang=client.lang)
    except MailError as exc:
        await ctx.db.run(codes.drop, session_id_hash=session.id_hash, purpose="step_up")
        raise MailUnavailable(reason=str(exc)) from None


async def check_code(ctx: Context, *, session: SessionRow, entered: str, client: Client) -> SteppedUp:
    await ctx.throttle.turn_away_known(ip=client.ip)

    @commits_refusals  # a wrong code stays counted, a void code void
    def check(db: Tx) -> SteppedUp:
        now = ctx.clock()
        ctx.throttle.check(ip=client.ip, db=db)  # before anything else, in this same transaction
        user = _customer(db, session)
        ctx.throttle.check(customer=user.customer_code, db=db)
        result = codes.check(db, ctx.codes, session_id_hash=session.id_hash, purpose="step_up", entered=entered,
                             now=now, max_attempts=ctx.settings.code_max_attempts)
        if result.ok:
            batch = Batch()
            stepped = stepped_up(batch, ctx, session, "email_code", client)
            if write_together(db, batch, gates=[codes.use(result, max_attempts=ctx.settings.code_max_attempts)]).made:
                return stepped
            result = codes.not_used(db, session_id_hash=session.id_hash, purpose="step_up",
                                    max_attempts=ctx.settings.code_max_attempts)
        if result.wrong_guess:
            # A wrong step-up code is a failed sign-in like any other: it counts toward the lock.
            ctx.throttle.failed(ip=client.ip, customer=user.customer_code, db=db)
            notices.failed_sign_in(db, ctx, user, client, now, kind="step_up_failed", method="email_code",
                                   reason="wrong_code")
        if result.outcome == "code_invalid":
            raise CodeRejected("code_invalid", attempts_left=result.attempts_left)
        if result.outcome == "no_code":
            raise CodeRejected("code_expired", reason="no step-up code was sent, or it was used")
        raise CodeRejected(result.outcome)

    try:
        return await ctx.db.run(check)
    except CodeRejected:
        ctx.outbox.wake()  # the failure may have locked the account: its e-mail goes now
        raise
