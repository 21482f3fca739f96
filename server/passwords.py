"""Password hashing with argon2id, off the event loop in a bounded pool.

Parameters are OWASP's minimum for argon2id (19 MiB, 2 iterations, 1 lane): enough against
offline guessing, and cheap enough that a login server can afford it under load.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

PASSWORD_MIN, PASSWORD_MAX = 8, 128


class Passwords:
    def __init__(self, *, time_cost: int = 2, memory_cost: int = 19 * 1024, parallelism: int = 1,
                 workers: int | None = None) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        # One hash per core at a time: more threads would only queue inside the CPU.
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="argon2",
                                        initializer=_lower_priority)
        # Unknown customers are checked against this, so they cost the same time as known ones.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Constant work whether or not the customer exists (pass None for unknown)."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.verify, password_hash, password)

    async def hash_async(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """Hashing threads yield the CPU to the event loop and the database thread when both want it.

    A guessing flood (or a rush of legacy logins) then slows password logins, which are seconds-
    long anyway, instead of every passkey login and page. Linux applies nice values per thread;
    elsewhere this does nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def check_password_rules(password: str) -> str | None:
    """The reason a new password is refused, or None."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"a password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters"
    return None
