"""Deciding for the broker's other services: may this session do this important operation?"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session as Db

from . import policy, store
from .context import Client, Context
from .errors import InvalidField, NotAuthenticated, PasskeyRequired, StepUpRequired
from .models import Session


@dataclass(frozen=True)
class Allowed:
    customer_code: str
    auth_method: str


async def authorize(ctx: Context, *, session: Session | None, operation: str | None, client: Client) -> Allowed:
    """Allowed, or NotAuthenticated / PasskeyRequired / StepUpRequired. No operation: a live session suffices."""
    if operation is not None and operation not in policy.IMPORTANT_OPERATIONS:
        raise InvalidField(reason=f"unknown operation {operation[:40]!r}", field="operation")
    if session is None:
        raise NotAuthenticated()

    def decide(db: Db) -> Allowed | str:
        user = store.user_by_id(db, session.user_id)
        if user is None:
            raise NotAuthenticated()
        refusal = None
        if operation is not None:
            refusal = policy.important_operation_refusal(session, ctx.settings, ctx.clock())
        if refusal:
            store.add_event(db, kind="authorization_refused", when=ctx.clock(), user_id=user.id, ip=client.ip,
                            user_agent=client.user_agent, operation=operation, reason=refusal,
                            auth_method=session.auth_method)
            return refusal
        return Allowed(user.customer_code, session.auth_method)

    decision = await ctx.db.run(decide)
    if decision == "passkey_required":
        raise PasskeyRequired()
    if decision == "step_up_required":
        raise StepUpRequired()
    return decision
