"""What Tobira records and tells the customer when something happens to their account.

Each function writes the security event and queues the e-mail in the caller's transaction, so
the notice exists exactly when the change does (the outbox worker sends it; see mail.py).
"""

from __future__ import annotations

import logging
from datetime import datetime

from . import messages, metrics, policy, store, store_outbox
from .context import Client, Context
from .db import Tx
from .mail import MailError
from .rows import UserRow
from .store_batch import Writer

log = logging.getLogger("tobira.notices")


def record(db: Writer, ctx: Context, kind: str, user_id: int | None, client: Client, **detail) -> None:
    """A security event now, from this client."""
    store.add_event(db, kind=kind, when=ctx.clock(), user_id=user_id, ip=client.ip, user_agent=client.user_agent,
                    **detail)


async def send_code(ctx: Context, *, email: str | None, code: str, purpose: str, lang: str) -> None:
    """The one-time code goes out at once (the customer is waiting); MailError when it cannot."""
    if not email:
        raise MailError("the customer has no e-mail address")
    s = ctx.settings
    await ctx.mailer.send([messages.code_mail(sender=s.mail_from, to=email, rp_name=s.rp_name, lang=lang, code=code,
                                              ttl=s.code_ttl, purpose=purpose)])


def mail(db: Writer, ctx: Context, user: UserRow, kind: str, build, **values) -> None:
    if not user.email:
        return
    s = ctx.settings
    msg = build(sender=s.mail_from, to=user.email, rp_name=s.rp_name, **values)
    store_outbox.enqueue_mail(db, kind=kind, to_addr=user.email, message=msg.as_string(), when=values.get("when") or ctx.clock())


def logged_in(db: Writer, ctx: Context, user: UserRow, method: str, client: Client, now: datetime, *,
              recorded: bool = False) -> None:
    """Everything a successful login does besides the session: reset failures, record, notify.
    recorded: the failure count and the login time are written already (by the gate the login
    hung on, store.gate_login_unless_locked)."""
    if not recorded:
        store.record_login(db, user.id, now)
    store.add_event(db, kind="login", when=now, user_id=user.id, ip=client.ip, user_agent=client.user_agent,
                    method=method)
    metrics.SIGN_INS.labels(method, "ok").inc()
    mail(db, ctx, user, "login", messages.login_mail, lang=client.lang, when=now, method=method, ip=client.ip,
          browser=client.user_agent)


def failed_sign_in(db: Tx, ctx: Context, user: UserRow, client: Client, now: datetime, *, kind: str, method: str,
                   reason: str, counted: int | None = None) -> policy.FailureOutcome:
    """A wrong password or code: one more consecutive failure, recorded; the one that reaches the
    threshold locks the account and tells the customer. counted: the failure count this attempt
    already added before it was checked (a password: login._count_attempt)."""
    lock_after = ctx.settings.lock_after_failures
    if counted is None:
        outcome = policy.count_failure(db, user.id, now=now, lock_after=lock_after)
    else:
        outcome = policy.lock_if_due(db, user.id, counted, now=now, lock_after=lock_after)
    store.add_event(db, kind=kind, when=now, user_id=user.id, ip=client.ip, user_agent=client.user_agent,
                    method=method, reason=reason, failures=outcome.failures)
    if kind == "login_failed":
        metrics.SIGN_INS.labels(method, "failed").inc()
    if outcome.locked_now:
        locked(db, ctx, user, client, now)
    return outcome


def locked(db: Tx, ctx: Context, user: UserRow, client: Client, now: datetime) -> None:
    store.add_event(db, kind="account_locked", when=now, user_id=user.id, ip=client.ip, user_agent=client.user_agent)
    log.warning("account locked", extra={"customer_code": user.customer_code})
    mail(db, ctx, user, "locked", messages.locked_mail, lang=client.lang, when=now, ip=client.ip)


def password_unlocked(db: Tx, ctx: Context, user: UserRow, client: Client, now: datetime) -> None:
    store.add_event(db, kind="password_unlocked", when=now, user_id=user.id, ip=client.ip,
                    user_agent=client.user_agent, actor="customer")
    mail(db, ctx, user, "password_unlocked", messages.password_unlocked_mail, lang=client.lang, when=now,
          ip=client.ip)


def passkey_added(db: Tx, ctx: Context, user: UserRow, name: str, provider: str | None, client: Client,
                  now: datetime, *, hold_until: datetime | None = None, automatic: bool = False) -> None:
    """automatic: made by the automatic upgrade after a code login (the broker counts these)."""
    store.add_event(db, kind="passkey_added", when=now, user_id=user.id, ip=client.ip, user_agent=client.user_agent,
                    name=name, provider=provider, hold_until=hold_until.isoformat() if hold_until else None,
                    **({"automatic": True} if automatic else {}))
    mail(db, ctx, user, "passkey_added", messages.passkey_mail, lang=client.lang, when=now, added=True, name=name,
          provider=provider, ip=client.ip, hold_until=hold_until)


def passkey_removed(db: Tx, ctx: Context, user: UserRow, name: str, provider: str | None, client: Client,
                    now: datetime, actor: str = "customer") -> None:
    store.add_event(db, kind="passkey_removed", when=now, user_id=user.id, ip=client.ip, user_agent=client.user_agent,
                    name=name, provider=provider, actor=actor)
    mail(db, ctx, user, "passkey_removed", messages.passkey_mail, lang=client.lang, when=now, added=False, name=name,
          provider=provider, ip=client.ip)


def clone_suspected(db: Tx, ctx: Context, user: UserRow, name: str, stored: int, received: int, client: Client,
                    now: datetime) -> None:
    """A sign counter that went backwards: the authenticator may have been copied (WebAuthn §6.1.1)."""
    store.add_event(db, kind="passkey_clone_suspected", when=now, user_id=user.id, ip=client.ip,
                    user_agent=client.user_agent, name=name, stored_sign_count=stored, received_sign_count=received)
    log.warning("sign counter did not increase", extra={"customer_code": user.customer_code,
                                                        "stored": stored, "received": received})
    mail(db, ctx, user, "clone_suspected", messages.clone_mail, lang=client.lang, when=now, name=name, ip=client.ip)
