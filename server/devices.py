""""Remember this PC": trusted devices that may skip the one-time code (never the password).

The browser keeps a 256-bit random token; the database keeps its SHA-256, bound to one customer.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from . import store_codes
from .db import Tx
from .rows import DeviceRow
from .store_batch import Writer


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def remember(db: Writer, *, user_id: int, now: datetime, days: int, user_agent: str | None) -> str:
    """Trust this browser for `days`; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    store_codes.add_trusted_device(db, user_id=user_id, token_hash=_hash(token), created_at=now,
                             expires_at=now + timedelta(days=days), user_agent=(user_agent or "")[:300] or None)
    return token


def recognise(db: Tx, token: str | None, *, user_id: int, now: datetime) -> DeviceRow | None:
    """The customer's unexpired trusted device for this token, or None (a token of another customer is None)."""
    if not token or len(token) > 100:
        return None
    device = store_codes.trusted_device(db, _hash(token), user_id, now)
    if device is not None:
        store_codes.use_trusted_device(db, device.id, now)
    return device


def forget_all(db: Tx, user_id: int) -> int:
    return store_codes.forget_trusted_devices(db, user_id)
