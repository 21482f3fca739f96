"""Where the customer is signed in (contract: "Where the customer is signed in"): their live
sessions and remembered PCs, and ending any of them. A session's public id is its OpenID Connect
`sid` (random, never the cookie's secret or its hash); ending one is the same as a logout there,
apps' grants and back-channel logouts included. Each action is a security event."""

from __future__ import annotations

from datetime import datetime

from . import oidc_logout, sessions, store, store_codes
from .config import Settings
from .context import Client
from .db import Tx
from .errors import NotFound
from .rows import SessionRow
from .untrusted import browser_summary


def overview(db: Tx, session: SessionRow, *, settings: Settings, now: datetime, lang: str) -> dict:
    """GET /api/sessions (through `as_json`) and the page: the live sessions (this one marked) and
    the remembered PCs still valid."""
    return overview_of(db, session.customer_id, current=session.id_hash, settings=settings, now=now, lang=lang)


def overview_of(db: Tx, customer_id: int, *, current: str | None, settings: Settings, now: datetime,
                lang: str) -> dict:
    """The same for any customer (the staff console's look: no session of theirs is `current`)."""
    live = [row for row in store.active_sessions_of(db, customer_id)
            if row.sid and not sessions.expired(row, now=now, settings=settings)]
    live.sort(key=lambda row: row.id_hash != current)  # this one first, then the most recently seen
    devices = [d for d in store_codes.trusted_devices_of(db, customer_id) if d.expires_at > now]
    return {
        "sessions": [{"id": row.sid, "current": row.id_hash == current,
                      "browser": browser_summary(row.user_agent, lang), "ip": row.ip,
                      "created_at": row.created_at, "last_seen_at": row.last_seen_at}
                     for row in live],
        "trusted_devices": [{"id": str(d.id), "browser": browser_summary(d.user_agent, lang),
                             "created_at": d.created_at, "expires_at": d.expires_at}
                            for d in devices],
    }


def as_json(found: dict) -> dict:
    """The overview with its times as ISO 8601 text (the contract's form)."""
    return {part: [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in item.items()} for item in items]
            for part, items in found.items()}


def end_session(db: Tx, session: SessionRow, sid: str, *, client: Client, now: datetime) -> None:
    """End one of the customer's sessions (NotFound for an id that is not one of theirs)."""
    ended = store.take_user_session(db, session.customer_id, sid) if 0 < len(sid) <= 43 else None
    if ended is None:
        raise NotFound(reason="no such session of this customer")
    oidc_logout.sessions_ended(db, [ended.sid], now)
    store.add_event(db, kind="session_ended", when=now, user_id=session.customer_id, ip=client.ip,
                    user_agent=client.user_agent, current=ended.id_hash == session.id_hash)


def end_others(db: Tx, session: SessionRow, *, client: Client, now: datetime) -> int:
    """"Sign out everywhere else": every session but this one ends."""
    ended = store.delete_other_sessions(db, session.customer_id, session.id_hash)
    oidc_logout.sessions_ended(db, ended, now)
    store.add_event(db, kind="other_sessions_ended", when=now, user_id=session.customer_id, ip=client.ip,
                    user_agent=client.user_agent, count=len(ended))
    return len(ended)


def forget_device(db: Tx, session: SessionRow, device_id: str, *, client: Client, now: datetime) -> None:
    """Forget one remembered PC: its next login asks for the code again."""
    if not device_id.isdigit() or len(device_id) > 18 \
            or not store_codes.forget_trusted_device(db, session.customer_id, int(device_id)):
        raise NotFound(reason="no such remembered PC of this customer")
    store.add_event(db, kind="trusted_device_forgotten", when=now, user_id=session.customer_id, ip=client.ip,
                    user_agent=client.user_agent)
