"""Passkey adoption, as numbers the broker can act on (`tobira stats`, contract: "Numbers"): who
has a passkey, who is active without one (the customers to reach before the passkey date), how
customers log in, day by day (Japan time)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

from . import store_stats
from .config import JST, Settings
from .db import Tx

ACTIVE = timedelta(days=30)
LOGIN_METHODS = ("passkey", "email_code", "trusted_device")


def adoption(db: Tx, settings: Settings, now: datetime, *, days: int = 30) -> dict:
    """The contract's `tobira stats --json` object, as of `now`; `days`: how many JST days of logins
    (the console's dashboard shows 90)."""
    since = now - ACTIVE
    first_day = (now.astimezone(JST) - timedelta(days=days - 1)).date()
    day_starts = datetime.combine(first_day, datetime.min.time(), tzinfo=JST)
    by_day: dict[str, dict[str, int]] = {
        (first_day + timedelta(days=i)).isoformat(): dict.fromkeys(LOGIN_METHODS, 0) for i in range(days)}
    for when, detail in store_stats.events_since(db, "login", day_starts):
        facts = json.loads(detail) if detail else {}
        day = when.astimezone(JST).date().isoformat()
        if day in by_day and facts.get("method") in by_day[day]:
            by_day[day][facts["method"]] += 1
    mandatory = settings.passkey_mandatory_from
    return {
        "customers": store_stats.count_customers(db),
        "with_passkey": store_stats.customers_with_passkey(db),
        "active_30d": store_stats.count_customers(db, active_since=since),
        "active_30d_with_passkey": store_stats.count_customers(db, active_since=since, with_passkey=True),
        "active_30d_without_passkey": store_stats.count_customers(db, active_since=since, with_passkey=False),
        "synced": store_stats.count_passkeys(db, synced=True),
        "device_bound": store_stats.count_passkeys(db, synced=False),
        "on_hold": store_stats.count_passkeys(db, held_at=now),
        "automatic_upgrades": store_stats.count_events(db, "passkey_added", detail_like='"automatic": true'),
        "days_to_mandatory": None if mandatory is None else max(0, math.ceil((mandatory - now) / timedelta(days=1))),
        "logins_by_day": by_day,
    }


def to_reach(db: Tx, now: datetime) -> list[str]:
    """`tobira stats --csv`: the codes of customers active in the last 30 days without a passkey."""
    return store_stats.codes_without_passkey(db, active_since=now - ACTIVE)
