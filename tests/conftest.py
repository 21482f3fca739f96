"""Fixtures: each test gets its own database, SMTP sink, clock and app (design.md, style 1)."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from server import accounts  # noqa: E402
from server.app import create_app  # noqa: E402
from server.config import load_settings  # noqa: E402
from server.logs import JsonFormatter  # noqa: E402
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
def json_log():
    """Every log line while the test runs, at DEBUG, as Tobira writes them (JSON): for the tests
    that no secret reaches the logs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
def clock():
    return Clock()


# The whole suite runs on SQLite and on PostgreSQL (CI: the server at 127.0.0.1:5432). Each test
# gets a fresh PostgreSQL database, cloned from one migrated template (fast: no DDL per test).
PG_SERVER = os.environ.get("TOBIRA_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _pg_admin():
    import psycopg

    url = PG_SERVER.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(f"{url}/postgres", autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def pg_template():
    try:
        admin = _pg_admin()
    except Exception as exc:  # noqa: BLE001 - any reason means: no server to test against
        print(f"\nPostgreSQL tests skipped: no server at {PG_SERVER} ({type(exc).__name__}: {exc})")
        yield None
        return
    from server import db as dbmod

    name = f"tobira_tpl_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    engine = dbmod.make_engine(f"{PG_SERVER}/{name}")
    dbmod.upgrade(engine)
    engine.dispose()
    yield name
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tobira.db'}"
        return
    template = request.getfixturevalue("pg_template")
    if template is None:
        pytest.skip(f"no PostgreSQL server at {PG_SERVER}")
    name = f"tobira_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield f"{PG_SERVER}/{name}"
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(tmp_path, mailsink, database_url):
    return {
        "TOBIRA_DATA_DIR": str(tmp_path),
        "TOBIRA_DATABASE_URL": database_url,
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
        app = create_app(s, clock=clock, passwords=passwords, mailer=mailer)
        app.state.ctx.throttle.tarpit_seconds = 0  # refusals at once (test_ratelimit checks the delay)
        return app

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


@pytest.fixture
def live(make_app):
    """Start a Tobira app served by uvicorn in a thread (oidckit.Live); stopped after the test."""
    from oidckit import Live

    servers = []

    def start(**overrides):
        servers.append(Live(make_app, **overrides))
        return servers[-1]

    yield start
    for one in servers:
        one.stop()
