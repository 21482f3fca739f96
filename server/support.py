"""What the staff console does to customers: find, look (recorded), act with a reason, and the
two-person rule for the two actions a social engineer wants (reset the passkeys, change the e-mail):
one staff member requests, a second approves within the hour, the customer is e-mailed at both.
Each action is the same domain function the CLI calls (accounts.py), plus an audit entry."""

from __future__ import annotations

import json
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from . import accounts, audit, messages, notices, passkeys, policy, signed_in, staff, store, store_staff
from .audit import Actor
from .context import Context
from .db import Tx
from .errors import InvalidField, NotFound, StaffRefusal
from .rows import StaffRequestRow, UserRow

AtOnce = Literal["unlock", "hold", "release-hold", "end-sessions"]
TwoPerson = Literal["reset-passkeys", "set-email"]  # what a social engineer wants: a second person approves
Action = Literal[AtOnce, TwoPerson]
AT_ONCE: tuple[str, ...] = get_args(AtOnce)
TWO_PERSON: tuple[str, ...] = get_args(TwoPerson)
APPROVAL_WINDOW = timedelta(hours=1)
EVENTS_SHOWN = 50
PAGE = 20


def _customer(db: Tx, code: str) -> UserRow:
    user = store.user_by_code(db, code) if isinstance(code, str) and len(code) <= 20 else None
    if user is None:
        raise NotFound(reason="no such customer")
    return user


def find(db: Tx, actor: Actor, query: str, *, now: datetime, page: int = 0) -> list[dict]:
    """By customer code or e-mail; a search shows names and addresses, so it is recorded too."""
    found = [{"customer_code": u.customer_code, "display_name": u.display_name, "email": u.email}
             for u in store_staff.find_customers(db, query, limit=PAGE, offset=page * PAGE)]
    audit.record(db, actor, "customers_searched", now=now, reason=query.strip()[:REASON_MAX],
                 customer_code=found[0]["customer_code"] if len(found) == 1 else None)
    return found


REASON_MAX = 200


def clean_reason(raw: str) -> str | None:
    """A reason as the audit keeps it: runs of spaces joined, 1-200 characters, something visible
    in it and nothing that hides or reorders text (control and format characters: a zero-width
    space, a right-to-left override, a terminal escape). None when unusable."""
    reason = " ".join(raw.split())
    if not reason or len(reason) > REASON_MAX:
        return None
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs", "Cn") for c in reason):
        return None
    return reason


def show(db: Tx, ctx: Context, actor: Actor, code: str, *, now: datetime, lang: str) -> dict:
    """One page of everything the desk needs; the look is recorded (the customer's events and the audit)."""
    user = _customer(db, code)
    store.add_event(db, kind="support_viewed", when=now, user_id=user.id, actor="support")
    audit.record(db, actor, "customer_viewed", now=now, customer_code=user.customer_code)
    signed_in_now = signed_in.as_json(signed_in.overview_of(db, user.id, current=None, settings=ctx.settings,
                                                            now=now, lang=lang))
    return {
        "customer_code": user.customer_code, "display_name": user.display_name, "email": user.email,
        "locked": policy.lock_state(user),
        "passkeys": [v.as_json() for v in passkeys.list_views(db, user.id, now)],
        **signed_in_now,
        "events": [{"at": e.created_at.isoformat(), "kind": e.kind, "ip": e.ip,
                    "detail": json.loads(e.detail) if e.detail else {}}
                   for e in store.events_of(db, user.id, newest_first=True, limit=EVENTS_SHOWN)],
    }


@dataclass(frozen=True)
class Outcome:
    status: str  # done | pending_approval
    request_id: str | None = None


def act(db: Tx, ctx: Context, actor: Actor, code: str, action: str, reason: str, *, email: str | None,
        now: datetime) -> Outcome:
    user = _customer(db, code)
    if action in AT_ONCE:
        _do(db, ctx, user, action, reason, email=None, now=now)
        audit.record(db, actor, action, now=now, customer_code=user.customer_code, reason=reason)
        return Outcome("done")
    if action == "set-email":
        try:
            email = accounts.check_email(email or "")
        except accounts.AccountError as exc:
            raise InvalidField(reason=str(exc), field="email") from None
    staff_member = store_staff.staff_by_name(db, actor.name)
    assert staff_member is not None  # noqa: S101 - a console actor is a staff member
    request = StaffRequestRow(id=secrets.token_urlsafe(16), action=action, user_id=user.id, email=email, reason=reason,
                              requested_by=staff_member.id, requested_at=now, expires_at=now + APPROVAL_WINDOW,
                              approved_by=None, done_at=None)
    store_staff.add_request(db, request)
    store.add_event(db, kind="support_requested", when=now, user_id=user.id, actor="support", action=action)
    notices.mail(db, ctx, user, "support_requested", messages.support_request_mail, lang="ja", when=now,
                 action=action)
    audit.record(db, actor, f"request:{action}", now=now, customer_code=user.customer_code, reason=reason)
    return Outcome("pending_approval", request.id)


def approve(db: Tx, ctx: Context, actor: Actor, request_id: str, *, now: datetime) -> Outcome:
    """The second person: never the requester, within the hour, once."""
    request = store_staff.request_by_id(db, request_id) if isinstance(request_id, str) else None
    if request is None:
        raise NotFound(reason="no such request")
    approver = store_staff.staff_by_name(db, actor.name)
    requester = store_staff.staff_by_id(db, request.requested_by)
    assert approver is not None and requester is not None  # noqa: S101
    # The second person is another person: not the requester, nor anyone the requester could have
    # enrolled as (they were shown that member's current enrolment code, or an ancestor's).
    if approver.id == requester.id or requester.id in staff.issued_by_chain(db, approver):
        raise StaffRefusal("same_staff", reason="the requester, or a member whose enrolment code they held")
    if request.done_at is not None or now >= request.expires_at or requester.disabled_at is not None:
        raise StaffRefusal("expired", reason="approved already, older than an hour, or its requester disabled")
    taken = store_staff.take_request(db, request.id, approver=approver.id, when=now)
    if taken is None:
        raise StaffRefusal("expired", reason="approved by someone else a moment ago")
    user = store.user_by_id(db, request.user_id)
    if user is None:
        raise NotFound(reason="the customer is gone")
    _do(db, ctx, user, request.action, request.reason, email=request.email, now=now)
    audit.record(db, actor, f"approve:{request.action}", now=now, customer_code=user.customer_code,
                 reason=request.reason)
    return Outcome("done")


def pending(db: Tx, now: datetime, *, page: int = 0) -> list[dict]:
    """What the second person checks before approving, the new address of an e-mail change included."""
    return [{"request_id": r.id, "action": r.action, "customer_code": code, "email": r.email, "reason": r.reason,
             "requested_by": by, "requested_at": r.requested_at.isoformat(), "expires_at": r.expires_at.isoformat()}
            for r, code, by in store_staff.pending_requests(db, now, limit=PAGE, offset=page * PAGE)]


def _do(db: Tx, ctx: Context, user: UserRow, action: str, reason: str, *, email: str | None, now: datetime) -> None:
    """The action itself: what `tobira user …` does."""
    code = user.customer_code
    if action == "unlock":
        accounts.unlock(db, code, now=now)
    elif action == "hold":
        accounts.hold(db, code, now=now, reason=reason)
    elif action == "release-hold":
        accounts.release_hold(db, code, now=now)
    elif action == "end-sessions":
        accounts.end_sessions(db, code, now=now)
    elif action == "reset-passkeys":
        accounts.reset_passkeys(db, code, now=now, notify=lambda d, u, count: notices.mail(
            d, ctx, u, "passkeys_reset", messages.reset_mail, lang="ja", when=now, count=count))
    elif action == "set-email":
        assert email is not None  # noqa: S101 - checked when requested
        accounts.set_email(db, code, email, now=now)
        # Told at the old address: the one a hijacker cannot silence.
        notices.mail(db, ctx, user, "email_changed", messages.email_changed_mail, lang="ja", when=now,
                     new_address=email, ip=None)
    else:  # pragma: no cover - the body model admits only an Action
        raise InvalidField(reason=f"unknown action {action}", field="action")
