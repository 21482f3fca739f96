"""What the domain needs to do its work, built once by create_app (or by a test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable
from datetime import datetime

from .codes import CodeHasher
from .config import Settings, utcnow
from .db import Database
from .mail import Mailer, OutboxWorker
from .oidc_keys import KeyRing
from .oidc_logout import LogoutSender
from .passwords import Passwords
from .ratelimit import Throttle


@dataclass
class Context:
    settings: Settings
    db: Database
    passwords: Passwords
    mailer: Mailer
    outbox: OutboxWorker
    codes: CodeHasher
    throttle: Throttle
    keys: KeyRing  # OpenID Connect's signing keys
    logouts: LogoutSender  # the apps' back-channel logouts
    clock: Callable[[], datetime] = field(default=utcnow)


@dataclass(frozen=True)
class Client:
    """Who is asking: for notices, events and the language of what they read."""

    ip: str | None = None
    user_agent: str | None = None
    lang: str = "ja"
