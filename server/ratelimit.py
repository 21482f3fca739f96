"""Rate limits shared by every instance: failed sign-ins and code e-mails, per address and per customer.

The algorithm is the `limits` library's fixed window. Its windows live in Redis when
`TOBIRA_REDIS_URL` is set (limits' own storage), else in Tobira's database (`SqlStorage` below,
the `rate_limits` table); the limiter code is the same either way. A storage that does not answer
refuses the request with `503 unavailable`: never a 500, never silently unlimited.

The limits, and why each is what it is:

- **Failed sign-ins per client address** (`TOBIRA_RATE_LIMIT`, 30/minute): wrong passwords
  (unknown customers too), wrong codes, rejected passkeys, failed step-ups. Only failures count,
  so customers behind one carrier NAT address are not punished for each other's logins, and the
  check runs before any password is hashed or signature verified: a flood of guesses is turned
  away cheaply (security.md §28).
- **Failed sign-ins per customer code** (`TOBIRA_CUSTOMER_RATE_LIMIT`, by default twice
  `TOBIRA_LOCK_AFTER_FAILURES` per 15 minutes: 20/15minutes): wrong passwords keyed by the customer
  code as submitted, *also for codes no customer has*, so a 429 tells nothing about who exists;
  wrong codes at login and at step-up keyed by the customer's code. It counts exactly what the
  lockout counts. The lockout (10 consecutive failures) already stops a lone attacker at the 10th
  guess; what it misses is failures interleaved with the real customer's successful logins, which
  reset its count (9 guesses, a login, 9 more, ...). This limit catches those. Its count may not
  be below the lockout's (config.py refuses that), so it never refuses a customer before the
  lockout would have locked them; by default it is twice the lockout's, so the locking failure and
  the contract's answers after a lock (423 for the right password, 401 for a wrong one) come
  first; past a lock it still slows an attacker who keeps guessing (a 423 would tell them they
  found the password). It lifts by itself when the window ends.
  Rejected passkeys are deliberately not counted per customer: the lockout does not count them, a
  signature is not a guessable secret, and counting them would let anyone holding a credential ID
  refuse its owner. For the same reason the per-customer check guards the password and the codes
  only: a customer under a guessing attack can still log in and step up with a passkey.
- **Passkey-login options per client address** (`TOBIRA_LOGIN_OPTIONS_LIMIT`, 60/minute): every
  `POST /api/login/passkey/options`, answered or not, because each one without a session cookie
  makes an anonymous session and a ceremony row (security.md §37). A login page asks once or twice
  (the autofill and the button); 60 a minute spares a carrier NAT address, and a flood of them is
  refused before it writes anything.
- **Code e-mails per customer** (`TOBIRA_CODE_SEND_LIMIT`, 10/hour): every login code, resend and
  step-up code to one customer, so nobody can bomb a customer's inbox through us.
- **Code e-mails per client address** (`TOBIRA_CODE_SEND_ADDRESS_LIMIT`, 100/hour): sending a code
  needs the right password (or a session), so this only bounds one address holding many stolen
  passwords; it is generous because successful logins from a carrier NAT address count here.

A client address is an IPv4 address, or an IPv6 address's /64 (security.md §36): one customer
line or host is handed a whole /64 and may send from any of its 2^64 addresses, so per address
would mean no limit. Only the windows' keys use the /64 (`address_key`); logs, events and
sessions keep the real address.

A code e-mail is counted before the code is made: a refused send leaves nothing behind (no
pending login, no code). A count, once made, stays, whatever the call that made it does next (a
refusal, an outage): in Redis as in the database, where each count is one statement that stands
alone (store_windows.py), so it holds no lock on its window for the rest of a login.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import math
import threading
import time
from datetime import datetime, timedelta
from typing import Callable, Iterator

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy.exc import SQLAlchemyError

from . import store_windows
from .config import Settings
from .db import Database, Tx
from .errors import RATE_LIMITED, ServiceError, Unavailable

FAILURES = "failed-sign-in"
CODE_MAILS = "code-mail"
LOGIN_OPTIONS = "login-options"


class RateLimited(ServiceError):
    declared = RATE_LIMITED


class TooManyCodeMails(RateLimited):
    message_key = "rate_limited_codes"


class TooManyRequests(RateLimited):
    message_key = "rate_limited_requests"


@functools.lru_cache(maxsize=4096)
def address_key(ip: str | None) -> str | None:
    """The rate-limit key of a client address: IPv4 as it is, IPv6 by its /64 (one customer's
    network hands out any address in it). An IPv4-mapped IPv6 address is its IPv4 address; what
    does not parse (a test client's name) is kept as it is."""
    if not ip:
        return ip
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if addr.version == 4:
        return str(addr)
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))


class SqlStorage(Storage):
    """`limits` windows in Tobira's own database (Redis needs no adapter: limits has one).

    Inside `joined(db)` the windows are read and written through the caller's `Tx` (SQLite's
    single writer is not asked for a second connection while the first holds the lock; on
    PostgreSQL a count is a statement of its own, see store_windows.py).
    """

    STORAGE_SCHEME = ["tobira-sql"]

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.database, self.clock = database, clock
        self._joined = threading.local()

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    @contextlib.contextmanager
    def joined(self, db: Tx | None) -> Iterator[None]:
        before = getattr(self._joined, "db", None)
        self._joined.db = db or before
        try:
            yield
        finally:
            self._joined.db = before

    def _run(self, fn, *args, **kwargs):
        db = getattr(self._joined, "db", None)
        return fn(db, *args, **kwargs) if db is not None else self.database.run_sync(fn, *args, **kwargs)

    def now(self) -> float:
        return self.clock().timestamp()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self.clock()
        if amount < 0:  # a count given back (Throttle.give_back) never opens a window of its own
            return self._run(store_windows.uncount_in_window, key, amount=-amount, now=now)
        return self._run(store_windows.count_in_window, key, amount=amount, now=now, expires_at=now + timedelta(seconds=expiry))

    def get(self, key: str) -> int:
        row = self._run(store_windows.rate_window, key, self.clock())
        return row.count if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._run(store_windows.rate_window, key, self.clock())
        return (row.expires_at if row else self.clock()).timestamp()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        return self._run(store_windows.clear_windows)

    def clear(self, key: str) -> None:
        self._run(store_windows.clear_window, key)


def make_storage(settings: Settings, database: Database, clock: Callable[[], datetime]) -> Storage:
    if not settings.redis_url:
        return SqlStorage(database, clock)
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # Short timeouts and one retry: a Redis that does not answer costs a login a second or two
    # (then 503), not the client library's default of ten retries.
    # limits types **options as float | str | bool, but hands them on to the redis client, which takes a Retry.
    storage = storage_from_string(settings.redis_url, key_prefix=settings.redis_key_prefix, wrap_exceptions=True,
                                  socket_timeout=1.0, socket_connect_timeout=1.0,
                                  retry=Retry(NoBackoff(), 1))  # type: ignore[arg-type]  # see above
    assert isinstance(storage, Storage)  # config._redis_url admits only redis:// and rediss://: a sync storage
    return storage


def _item(limit: tuple[int, int] | None) -> RateLimitItemPerSecond | None:
    return RateLimitItemPerSecond(limit[0], limit[1], namespace="tobira") if limit else None


class Throttle:
    """Every rate limit of the sign-in paths, on one storage. Each method costs at most one storage
    round trip per key on the way through (a refusal costs one more, for its retry_after).

    Sync: pass `db=` from inside `Database.run` to count in that transaction (without it, each
    storage call is a transaction of its own). `ip` or `customer` None (unknown address, a code no customer can have)
    skips that key.
    """

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.limiter = FixedWindowRateLimiter(storage)
        self.failures_per_address = _item(settings.rate_limit)
        self.failures_per_customer = _item(settings.customer_rate_limit)
        self.mails_per_customer = _item(settings.code_send_limit)
        self.mails_per_address = _item(settings.code_send_address_limit)
        self.options_per_address = _item(settings.login_options_limit)
        # limits' Redis storage keeps windows in real time; SqlStorage in the app's clock.
        self._now = storage.now if isinstance(storage, SqlStorage) else time.time
        # Refusals this process has already seen, until their window ends: a flood from an address
        # that is over its limit is then turned away without a storage round trip (on SQLite that
        # round trip queues behind every customer's login). Only refusals are remembered, so
        # nothing here is state another instance needs: each one reads the shared window itself.
        self._refused: dict[tuple, float] = {}
        self.tarpit_seconds = 1.0

    async def turn_away_known(self, *, ip: str | None = None, customer: str | None = None,
                              login_options: bool = False) -> None:
        """On the event loop, before any other work: a refusal already known is answered from
        memory, and a second late. A client that keeps sending after a 429 (a flood) is held to one
        request per connection per second for the price of a sleeping task, instead of taking the
        server's time at the rate it can send. login_options: the address's options limit is
        asked about instead of its failed sign-ins."""
        try:
            if login_options:
                self._known_refusal(self._options_key(ip), TooManyRequests)
            else:
                self.refused_recently(ip=ip, customer=customer)
        except RateLimited:
            if self.tarpit_seconds:
                await asyncio.sleep(self.tarpit_seconds)
            raise

    def refused_recently(self, *, ip: str | None = None, customer: str | None = None) -> None:
        """From memory only (safe on the event loop): RateLimited when a refusal for this address
        or customer is known and its window has not ended."""
        if not self._refused:
            return
        for _, key in self._failure_keys(ip, customer):
            self._known_refusal(key, RateLimited)

    def check(self, *, ip: str | None = None, customer: str | None = None, db: Tx | None = None) -> None:
        """Raise RateLimited when this address or this customer has used up its failed sign-ins."""
        self._failed_sign_ins(ip, customer, db, count=False)

    def _remember_refusal(self, key: tuple, wait: int) -> None:
        if len(self._refused) >= 10_000:  # bounded: drop what has ended, else start over
            now = self._now()
            self._refused = {k: v for k, v in self._refused.items() if v > now}
            if len(self._refused) >= 10_000:
                self._refused.clear()
        self._refused[key] = self._now() + wait

    def failed(self, *, ip: str | None = None, customer: str | None = None, db: Tx | None = None) -> None:
        """Count one failed sign-in against this address and this customer."""
        with self._using(db):
            for item, key in self._failure_keys(ip, customer):
                self.limiter.hit(item, *key)

    def attempt(self, *, ip: str | None = None, customer: str | None = None, db: Tx | None = None) -> None:
        """Count one sign-in attempt now, before its password is hashed, and refuse it (RateLimited)
        when that goes past a limit: N parallel guesses count N before any of them is checked
        (security.md 32). A success gives its count back (`give_back`), so only failures stay."""
        self._failed_sign_ins(ip, customer, db, count=True)

    def _failed_sign_ins(self, ip: str | None, customer: str | None, db: Tx | None, *, count: bool) -> None:
        """RateLimited when a failed-sign-in limit is used up; count: this attempt is counted first."""
        self.refused_recently(ip=ip, customer=customer)
        with self._using(db):
            for item, key in self._failure_keys(ip, customer):
                allowed = self.limiter.hit(item, *key) if count else self.limiter.test(item, *key)
                if not allowed:
                    wait = self._wait(item, key)
                    self._remember_refusal(key, wait)
                    raise RateLimited(retry_after=wait, reason=f"failed sign-ins: {key[1]}")

    def give_back(self, *, ip: str | None = None, customer: str | None = None, db: Tx | None = None) -> None:
        """An attempt counted by `attempt` succeeded: it is no failure."""
        with self._using(db):
            for item, key in self._failure_keys(ip, customer):
                self.limiter.hit(item, *key, cost=-1)

    def code_mail_allowed(self, *, ip: str | None = None, customer: str | None = None,
                          db: Tx | None = None) -> None:
        """TooManyCodeMails when a code e-mail to this customer or address would be over budget.
        Asked before the password is checked: a refusal that only a right password reaches would
        tell a guesser the password is right (security.md 33). `code_mail` counts the send."""
        keys = [(self.mails_per_customer, (CODE_MAILS, "customer", customer)),
                (self.mails_per_address, (CODE_MAILS, "address", address_key(ip)))]
        with self._using(db):
            for item, (bucket, kind, ident) in keys:
                if item is not None and ident and not self.limiter.test(item, bucket, kind, ident):
                    raise TooManyCodeMails(retry_after=self._wait(item, (bucket, kind, ident)),
                                           reason=f"code e-mails: {kind}")

    def code_mail(self, *, ip: str | None = None, customer: str | None = None, db: Tx | None = None) -> None:
        """Count one code e-mail about to be made; TooManyCodeMails when this customer or address is over budget."""
        keys = [(self.mails_per_customer, (CODE_MAILS, "customer", customer)),
                (self.mails_per_address, (CODE_MAILS, "address", address_key(ip)))]
        with self._using(db):
            for item, (bucket, kind, ident) in keys:
                if item is not None and ident and not self.limiter.hit(item, bucket, kind, ident):
                    raise TooManyCodeMails(retry_after=self._wait(item, (bucket, kind, ident)),
                                           reason=f"code e-mails: {kind}")

    def login_options(self, *, ip: str | None, db: Tx | None = None) -> None:
        """Count one passkey-login options request from this address, answered or not;
        TooManyRequests when the address is over its limit (a refusal already known is answered
        from memory, without a storage round trip)."""
        item, key = self.options_per_address, self._options_key(ip)
        if item is None or not key[2]:
            return
        self._known_refusal(key, TooManyRequests)
        with self._using(db):
            if not self.limiter.hit(item, *key):
                wait = self._wait(item, key)
                self._remember_refusal(key, wait)
                raise TooManyRequests(retry_after=wait, reason="login options per address")

    def _options_key(self, ip: str | None) -> tuple:
        return LOGIN_OPTIONS, "address", address_key(ip)

    def _known_refusal(self, key: tuple, refusal: type[RateLimited]) -> None:
        until = self._refused.get(key) if self._refused else None
        if until is not None:
            now = self._now()
            if now < until:
                raise refusal(retry_after=max(1, math.ceil(until - now)), reason=f"{key[0]}: {key[1]} (known)")
            self._refused.pop(key, None)

    def _failure_keys(self, ip: str | None, customer: str | None):
        keys = [(self.failures_per_address, (FAILURES, "address", address_key(ip))),
                (self.failures_per_customer, (FAILURES, "customer", customer))]
        return [(item, key) for item, key in keys if item is not None and key[2]]

    def _wait(self, item, key) -> int:
        reset = self.storage.get_expiry(item.key_for(*key))
        return max(1, math.ceil(reset - self._now()))

    @contextlib.contextmanager
    def _using(self, db: Tx | None) -> Iterator[None]:
        joined = self.storage.joined(db) if isinstance(self.storage, SqlStorage) else contextlib.nullcontext()
        try:
            with joined:
                yield
        except StorageError as exc:
            raise Unavailable(reason=f"rate-limit storage: {exc.storage_error}") from None


def make_throttle(settings: Settings, database: Database, clock: Callable[[], datetime]) -> Throttle:
    return Throttle(make_storage(settings, database, clock), settings)
