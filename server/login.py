"""The legacy two-step login: customer code + password, then a code by e-mail (or a trusted device).

Each step is one async function with no HTTP in it. Database work for a step happens in one
transaction; outcomes that must be remembered even when the answer is a refusal (a failure
count, a void code) are returned from the transaction and raised as errors only after it commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from . import codes, devices, metrics, notices, oidc_logout, policy, sessions, stepup, store, store_codes
from .context import Client, Context
from .db import Tx, commits_refusals
from .errors import AccountLocked, CodeRejected, InvalidCredentials, MailUnavailable, NoPendingLogin, ResendTooSoon
from .mail import MailError
from .rows import SessionRow, UserRow
from .store_batch import Batch, write_together

CUSTOMER_CODE = re.compile(r"[A-Za-z0-9-]{4,20}")
DEFAULT_REDIRECT = "/account"
RESTRICTED_LANDING = "/account/passkey-required"


def safe_next(path: str | None) -> str | None:
    """A same-origin path to land on after login, or None. Never another site (`//evil`, `/\\evil`)."""
    if not path or len(path) > sessions.NEXT_MAX or not path.startswith("/") or path.startswith("//"):
        return None
    if "\\" in path or any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return None
    if path.startswith(("/login", "/api/", "/logout")):
        return None
    return path


@dataclass(frozen=True)
class LoginStep:
    """What a step produced: `session_id` for the cookie, and for "ok" where to go next."""

    status: str  # "code_sent" | "ok"
    session_id: str
    redirect: str | None = None
    device_token: str | None = None


# --- step 1: customer code and password ------------------------------------------------------


async def submit_password(ctx: Context, *, customer_code: str, password: str, current_session: str | None,
                          device_token: str | None, next_path: str | None, client: Client) -> LoginStep:
    # Keyed by the code as typed, whether or not a customer has it: a 429 tells nothing about who exists.
    key = customer_code if CUSTOMER_CODE.fullmatch(customer_code) else None
    # Before any hashing: an address or a customer code that keeps failing is turned away for the
    # price of a read per key.
    await ctx.throttle.turn_away_known(ip=client.ip, customer=key)  # a known refusal costs no round trip
    attempt = await ctx.db.run(_count_attempt, ctx, key, client)
    user = attempt.user
    # Unknown customers, and locked accounts, are checked against a dummy hash: the same work, the
    # same time and the same answer as a wrong password, so neither a lock nor a right password
    # behind it shows (security.md 30).
    # checkable is only ever True with a user (_count_attempt): the None test is for the type checker.
    ok = await ctx.passwords.verify_async(user.password_hash if attempt.checkable and user is not None else None,
                                          password)
    if not ok:
        locked_now = await ctx.db.run(_password_failed, ctx, attempt, key, client)
        if locked_now:
            ctx.outbox.wake()
        raise InvalidCredentials(reason="unknown customer" if user is None else
                                 "wrong password" if attempt.checkable else "locked: password not checked")

    step, code, email = await ctx.db.run(
        _password_accepted, ctx, user, key, current_session=current_session, device_token=device_token,
        next_path=safe_next(next_path), client=client)
    if code is None:
        ctx.outbox.wake()
        return step
    try:
        await notices.send_code(ctx, email=email, code=code, purpose="login", lang=client.lang)
    except MailError as exc:
        # No half-made login: without the mail, the pending login is useless; remove it.
        await ctx.db.run(sessions.end, sessions.hash_id(step.session_id))
        raise MailUnavailable(reason=str(exc)) from None
    return step


@dataclass(frozen=True)
class PasswordAttempt:
    user: UserRow | None
    failures: int  # the customer's failure count with this attempt in it (0: unknown customer)
    checkable: bool  # False: unknown, locked, or past the lock's count: the password is not looked at


def _count_attempt(db: Tx, ctx: Context, key: str | None, client: Client) -> PasswordAttempt:
    """Count the attempt before its password is hashed, so N parallel guesses count N first
    (security.md 32): against the address and the customer code (429 past their limits), and as one
    more consecutive failure of the customer; a right password gives both back."""
    ctx.throttle.attempt(ip=client.ip, customer=key, db=db)
    # Asked before the password: a budget refusal that only a right password reaches would tell a
    # guesser that it is right (security.md 33).
    ctx.throttle.code_mail_allowed(ip=client.ip, customer=key, db=db)
    user = store.count_attempt(db, key) if key else None
    if user is None:
        return PasswordAttempt(None, 0, False)
    checkable = policy.lock_state(user) == "no" and user.failed_logins <= ctx.settings.lock_after_failures
    return PasswordAttempt(user, user.failed_logins, checkable)


def _password_failed(db: Tx, ctx: Context, attempt: PasswordAttempt, key: str | None, client: Client) -> bool:
    now = ctx.clock()
    user = attempt.user
    if user is None:
        # A row either way, so the two paths do the same database work.
        store.add_event(db, kind="login_failed", when=now, user_id=None, ip=client.ip,
                        user_agent=client.user_agent, method="password", reason="unknown_customer")
        metrics.SIGN_INS.labels("password", "failed").inc()
        return False
    outcome = notices.failed_sign_in(db, ctx, user, client, now, kind="login_failed", method="password",
                                     reason="wrong_password" if attempt.checkable else "locked",
                                     counted=attempt.failures)
    return outcome.locked_now


def _password_accepted(db: Tx, ctx: Context, user: UserRow, key: str, *, current_session: str | None,
                       device_token: str | None, next_path: str | None,
                       client: Client) -> tuple[LoginStep, str | None, str | None]:
    now = ctx.clock()
    device = None
    if policy.trusted_devices_apply(ctx.settings, now):
        device = devices.recognise(db, device_token, user_id=user.id, now=now)
    # What the right password makes is written at once, and only while no lock is set, read as the
    # customer's row is written (its counted failure given back, or the login recorded): a right
    # guess that lands after a parallel wrong one locked the account gets the wrong password's
    # answer, and no code, mail or session.
    batch = Batch()
    if device is not None:
        step = LoginStep("ok", sessions.create(batch, now=now, state=sessions.ACTIVE, user=user,
                                               auth_method="trusted_device", ip=client.ip,
                                               user_agent=client.user_agent, replacing=current_session).raw_id,
                         redirect=next_path or DEFAULT_REDIRECT)
        # The gate writes the customer's row (the failures reset): nothing else in the batch may.
        notices.logged_in(batch, ctx, user, "trusted_device", client, now, recorded=True)
        gate = store.gate_login_unless_locked(user.id, now)
        code = None
    else:
        # Counted before anything is made: a refusal leaves no pending login and no code.
        ctx.throttle.code_mail(ip=client.ip, customer=user.customer_code, db=db)
        new = sessions.create(batch, now=now, state=sessions.PENDING, user=user, next_path=next_path,
                              ip=client.ip, user_agent=client.user_agent, replacing=current_session)
        code = codes.issue(batch, ctx.codes, session_id_hash=new.row.id_hash, user_id=user.id, purpose="login",
                           now=now, ttl=ctx.settings.code_ttl)
        store.add_event(batch, kind="code_sent", when=now, user_id=user.id, ip=client.ip,
                        user_agent=client.user_agent, purpose="login")
        step = LoginStep("code_sent", new.raw_id)
        gate = store.gate_failure_given_back(user.id)
    if not write_together(db, batch, gates=[gate]).made:
        raise InvalidCredentials(reason="locked while the password was checked")
    ctx.throttle.give_back(ip=client.ip, customer=key, db=db)
    return step, code, user.email if code is not None else None


# --- step 2: the e-mailed code ---------------------------------------------------------------


async def submit_code(ctx: Context, *, session_id_hash: str | None, entered: str, remember_device: bool,
                      client: Client) -> LoginStep:
    await ctx.throttle.turn_away_known(ip=client.ip)
    try:
        step = await ctx.db.run(_check_code, ctx, session_id_hash, entered, remember_device, client)
    except CodeRejected:
        ctx.outbox.wake()  # the failure may have locked the account: its e-mail goes now
        raise
    ctx.outbox.wake()
    return step


@commits_refusals  # a wrong code stays counted, a void code void
def _check_code(db: Tx, ctx: Context, session_id_hash: str | None, entered: str, remember: bool,
                client: Client) -> LoginStep:
    now = ctx.clock()
    ctx.throttle.check(ip=client.ip, db=db)  # before anything else, in this same transaction
    pending, user = _continue_login(db, ctx, session_id_hash, now)
    # The customer is known only now; their failures are checked before the code is compared.
    ctx.throttle.check(customer=user.customer_code, db=db)
    check = codes.check(db, ctx.codes, session_id_hash=pending.id_hash, purpose="login", entered=entered,
                        now=now, max_attempts=ctx.settings.code_max_attempts)
    if check.ok:
        # All of the login at once, hung on two gates: the code used up (once, and never when void),
        # then the login written only while no lock is set, read as the row is written (a lock set
        # since _continue_login read the customer wins).
        batch = Batch()
        new = sessions.create(batch, now=now, state=sessions.ACTIVE, user=user, auth_method="email_code",
                              verified=True, ip=client.ip, user_agent=client.user_agent, replacing=pending.id_hash)
        notices.logged_in(batch, ctx, user, "email_code", client, now, recorded=True)
        token = None
        if remember and ctx.settings.trusted_device_days > 0:
            token = devices.remember(batch, user_id=user.id, now=now, days=ctx.settings.trusted_device_days,
                                     user_agent=client.user_agent)
            store.add_event(batch, kind="trusted_device_added", when=now, user_id=user.id, ip=client.ip,
                            user_agent=client.user_agent)
        written = write_together(db, batch, gates=[codes.use(check, max_attempts=ctx.settings.code_max_attempts),
                                                   store.gate_login_unless_locked(user.id, now)])
        if written.blocked_by == 1:
            raise AccountLocked(reason="locked while the code was checked")
        if written.made:
            # From the passkey date a password login lands where the restriction is explained.
            landing = RESTRICTED_LANDING if policy.passkeys_mandatory(ctx.settings, now) else None
            return LoginStep("ok", new.raw_id, redirect=landing or pending.next_path or DEFAULT_REDIRECT,
                             device_token=token)
        check = codes.not_used(db, session_id_hash=pending.id_hash, purpose="login",
                               max_attempts=ctx.settings.code_max_attempts)
    if check.wrong_guess:
        ctx.throttle.failed(ip=client.ip, customer=user.customer_code, db=db)
        notices.failed_sign_in(db, ctx, user, client, now, kind="login_failed", method="email_code",
                               reason="wrong_code")
    if check.outcome == "no_code":
        # The pending login has no live code (its mail failed, or it was used): start again.
        raise NoPendingLogin(reason="no live code")
    if check.outcome == "code_invalid":
        raise CodeRejected("code_invalid", attempts_left=check.attempts_left)
    raise CodeRejected(check.outcome)


# --- re-sending the code ---------------------------------------------------------------------


async def resend_code(ctx: Context, *, session_id_hash: str | None, client: Client) -> None:
    code, email, pending_hash = await ctx.db.run(_reissue, ctx, session_id_hash, client)
    try:
        await notices.send_code(ctx, email=email, code=code, purpose="login", lang=client.lang)
    except MailError as exc:
        # The old code is void already; remove the unsent one so no code is live that nobody received.
        await ctx.db.run(codes.drop, session_id_hash=pending_hash, purpose="login")
        raise MailUnavailable(reason=str(exc)) from None


def _reissue(db: Tx, ctx: Context, session_id_hash: str | None, client: Client) -> tuple[str, str | None, str]:
    now = ctx.clock()
    pending, user = _continue_login(db, ctx, session_id_hash, now)
    wait = codes.resend_wait(store_codes.code_for(db, pending.id_hash, "login", lock=True), now=now,
                             resend_after=ctx.settings.code_resend_after)
    if wait:
        raise ResendTooSoon(retry_after=wait)
    ctx.throttle.code_mail(ip=client.ip, customer=user.customer_code, db=db)
    code = codes.issue(db, ctx.codes, session_id_hash=pending.id_hash, user_id=user.id, purpose="login",
                       now=now, ttl=ctx.settings.code_ttl)
    store.add_event(db, kind="code_sent", when=now, user_id=user.id, ip=client.ip, user_agent=client.user_agent,
                    purpose="login", resend=True)
    return code, user.email, pending.id_hash


# --- logging out ------------------------------------------------------------------------------


async def logout(ctx: Context, session: SessionRow, client: Client) -> None:
    """End this browser's session for good (the trusted device stays, as the contract says)."""

    def end(db: Tx) -> int:
        ended = sessions.end(db, session.id_hash)
        if not (ended and session.user_id and session.state == sessions.ACTIVE):
            return 0
        store.add_event(db, kind="logout", when=ctx.clock(), user_id=session.user_id, ip=client.ip,
                        user_agent=client.user_agent)
        return oidc_logout.sessions_ended(db, [ended.sid], ctx.clock())

    if await ctx.db.run(end):
        ctx.logouts.wake()  # logout tokens were queued: send them now rather than at the next poll


# --- lifting the password lock ---------------------------------------------------------------


async def unlock_password(ctx: Context, *, session: SessionRow, client: Client) -> bool:
    """The customer lifts the automatic lock themselves, after a passkey step-up (a fresh passkey
    login counts): a guesser who locked the password cannot make a passkey customer call the broker.
    A code cannot do this: the lock closes the code path, and a code can be phished. True when a lock
    was lifted."""
    now = ctx.clock()
    stepup.require_step_up(session, ctx.settings, now, passkey=True)

    def lift(db: Tx) -> bool:
        user = sessions.customer_of(db, session)
        if policy.lock_state(user) == "hold":  # only the support desk lifts its own hold
            raise AccountLocked(reason="support hold")
        if not store.unlock_password(db, user.id):
            return False
        notices.password_unlocked(db, ctx, user, client, now)
        return True

    lifted = await ctx.db.run(lift)
    if lifted:
        ctx.outbox.wake()
    return lifted


# --- shared pieces ---------------------------------------------------------------------------


def _continue_login(db: Tx, ctx: Context, session_id_hash: str | None, now: datetime) -> tuple[SessionRow, UserRow]:
    """(pending session, its customer) for a login that may go on; NoPendingLogin or AccountLocked."""
    found = sessions.load_with_customer(db, session_id_hash, now=now, settings=ctx.settings) \
        if session_id_hash else None
    if found is None or found[0].state != sessions.PENDING:
        raise NoPendingLogin()
    row, user = found
    if policy.lock_state(user) != "no":  # both locks close the password and code path
        raise AccountLocked()
    return row, user


