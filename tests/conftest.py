"""Fixtures: each test gets its own database, SMTP sink, clock and app (design.md, style 1)."""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from server import accounts  # noqa: E402
from server.app import create_app  # noqa: E402
from server.config import load_settings  # noqa: E402
from server.mail import SmtpMailer  # noqa: E402
from server.passwords import Passwords  # noqa: E402

ORIGIN = "http://localhost:8000"
PASSWORD = "correct horse battery"


class Clock:
    """A clock the tests move by hand: expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def passwords():
    # The real argon2id at the production parameters: the tests also prove they work.
    pw = Passwords()
    yield pw
    pw.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def env(tmp_path, mailsink):
    return {
        "TOBIRA_DATA_DIR": str(tmp_path),
        "TOBIRA_DATABASE_URL": f"sqlite:///{tmp_path / 'tobira.db'}",
        "TOBIRA_SMTP_URL": mailsink.url,
        "TOBIRA_SECRET_KEY": "k" * 16 + "test-secret-not-for-production",
    }


@pytest.fixture
def settings(env):
    return load_settings(env, dotenv=None)


@pytest.fixture
def make_app(settings, clock, passwords):
    """Build an app; keyword arguments replace settings fields."""

    def make(**overrides):
        s = dataclasses.replace(settings, **overrides) if overrides else settings
        mailer = SmtpMailer(s.smtp) if s.smtp else None
        return create_app(s, clock=clock, passwords=passwords, mailer=mailer)

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        yield c


def add_customer(app, code="TARO1234", email="taro@example.com", name="山田 太郎", password=PASSWORD):
    ctx = app.state.ctx
    return ctx.db.run_sync(accounts.add_user, customer_code=code, display_name=name, email=email,
                           password_hash=ctx.passwords.hash(password), now=ctx.clock())


@pytest.fixture
def customer(app):
    return add_customer(app)


def login(client, mailsink, code="TARO1234", email="taro@example.com", password=PASSWORD, remember=False):
    """The whole legacy login through the API; returns the final response."""
    r = client.post("/api/login/password", json={"customer_code": code, "password": password})
    assert r.status_code == 200, r.text
    if r.json()["status"] == "ok":
        return r
    otp = mailsink.last_code(email)
    r = client.post("/api/login/code", json={"code": otp, "remember_device": remember})
    assert r.status_code == 200, r.text
    return r
