"""TOBIRA_RATE_LIMIT: failed sign-ins per client address, shared by every instance.

The algorithm is the `limits` library's fixed window; `SqlStorage` only keeps its counters in the
database. Only failures are counted, so customers behind one carrier NAT address are not punished
for each other's successful logins, and the check runs before any password is hashed: a flood of
guesses is turned away cheaply (security.md §28).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Callable

from limits import RateLimitItemPerSecond
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy.exc import SQLAlchemyError

from . import store
from .db import Database
from .errors import ServiceError


class RateLimited(ServiceError):
    status, code = 429, "rate_limited"


class SqlStorage(Storage):
    """`limits` counters in Tobira's own database (Redis needs no adapter: limits has one)."""

    STORAGE_SCHEME = ["tobira-sql"]

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.database, self.clock = database, clock

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self.clock()
        return self.database.run_sync(store.bump_counter, key, amount=amount, now=now,
                                      expires_at=now + timedelta(seconds=expiry))

    def get(self, key: str) -> int:
        row = self.database.run_sync(store.counter, key, self.clock())
        return row.count if row else 0

    def get_expiry(self, key: str) -> float:
        row = self.database.run_sync(store.counter, key, self.clock())
        return (row.expires_at if row else self.clock()).timestamp()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        return self.database.run_sync(store.clear_counters)

    def clear(self, key: str) -> None:
        self.database.run_sync(store.clear_counter, key)


class FailureThrottle:
    """Counts failed sign-ins per client address; refuses further tries once over the limit."""

    def __init__(self, storage: Storage, limit: tuple[int, int] | None, clock: Callable[[], datetime]) -> None:
        self.limiter = FixedWindowRateLimiter(storage)
        self.item = RateLimitItemPerSecond(limit[0], limit[1]) if limit else None
        self.clock = clock

    def check(self, ip: str | None) -> None:
        """Raise RateLimited when this address has used up its failures (sync: run it in a thread)."""
        if self.item is None or not ip:
            return
        if not self.limiter.test(self.item, "failed-sign-in", ip):
            reset = self.limiter.get_window_stats(self.item, "failed-sign-in", ip).reset_time
            wait = max(1, math.ceil(reset - self.clock().timestamp()))
            raise RateLimited(retry_after=wait, reason=f"failed sign-ins from {ip}")

    def failed(self, ip: str | None) -> None:
        if self.item is not None and ip:
            self.limiter.hit(self.item, "failed-sign-in", ip)
