"""Deciding for the broker's other services: may this session do this important operation?"""

from __future__ import annotations

from dataclasses import dataclass

from . import accounts, devices, messages, policy, sessions, store, store_outbox
from .context import Client, Context
from .db import Tx
from .errors import InvalidField, NotAuthenticated, refused
from .rows import SessionRow


@dataclass(frozen=True)
class Allowed:
    customer_code: str
    auth_method: str


async def authorize(ctx: Context, *, session: SessionRow | None, operation: str | None, client: Client) -> Allowed:
    """Allowed, or NotAuthenticated / PasskeyRequired / StepUpRequired. No operation: a live session suffices."""
    if operation is not None and operation not in policy.IMPORTANT_OPERATIONS:
        raise InvalidField(reason=f"unknown operation {operation[:40]!r}", field="operation")
    if session is None:
        raise NotAuthenticated()

    def decide(db: Tx) -> Allowed | policy.Refusal:
        user = sessions.customer_of(db, session)
        refusal = None
        if operation is not None:
            refusal = policy.important_operation_refusal(session, ctx.settings, ctx.clock())
        if refusal:
            store.add_event(db, kind="authorization_refused", when=ctx.clock(), user_id=user.id, ip=client.ip,
                            user_agent=client.user_agent, operation=operation, reason=refusal.reason,
                            auth_method=session.auth_method)
            return refusal
        # Callers pass web.auth.logged_in's session, an active one, and every active session is made
        # with its auth_method (sessions.create at each login, carried over by sessions.rotate).
        assert session.auth_method is not None
        return Allowed(user.customer_code, session.auth_method)

    decision = await ctx.db.run(decide)
    if isinstance(decision, policy.Refusal):
        raise refused(decision)
    return decision


async def change_email(ctx: Context, *, session: SessionRow | None, email: str, client: Client) -> str:
    """The customer changes their own e-mail: an important operation (rule + step-up), told to the old address."""
    try:
        email = accounts.check_email(email)
    except accounts.AccountError:
        raise InvalidField(reason="not a usable e-mail address", field="email") from None
    await authorize(ctx, session=session, operation="email_change", client=client)
    assert session is not None  # authorize() raised NotAuthenticated otherwise

    def change(db: Tx) -> str:
        now = ctx.clock()
        user = sessions.customer_of(db, session)
        old = user.email
        store.set_email(db, user.id, email)
        devices.forget_all(db, user.id)
        store.add_event(db, kind="email_changed", when=now, user_id=user.id, ip=client.ip,
                        user_agent=client.user_agent, actor="customer")
        if old and old != email:
            s = ctx.settings
            msg = messages.email_changed_mail(sender=s.mail_from, to=old, rp_name=s.rp_name, lang=client.lang,
                                              when=now, new_address=email, ip=client.ip)
            store_outbox.enqueue_mail(db, kind="email_changed", to_addr=old, message=msg.as_string(), when=now)
        return email

    changed = await ctx.db.run(change)
    ctx.outbox.wake()
    return changed
