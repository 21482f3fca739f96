"""Round trips to PostgreSQL per login, counted by a proxy between Tobira and the server.

    python -m bench.roundtrips [--postgres postgresql+psycopg://postgres@127.0.0.1:5432] [--redis redis://...]

One Tobira app (in process, no sockets but the database's) on a fresh database reached through
tests/pgturns.py. A warm-up login opens the connections first, so what is counted is a login's
own conversation: a passkey login (options + verify, with its session and queued notice) and a
password + code login (password, then code). The numbers are exact, not timings: they do not
depend on the machine's load.

Counted twice: with the rate-limit windows in PostgreSQL (the default: each window a login asks
about is a statement of its own, two for a passkey login, ten for a password + code login) and in
Redis (TOBIRA_REDIS_URL, what the README advises for many instances: the database is then asked
only about the login itself).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import psycopg  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from mailsink import MailSink, body  # noqa: E402
from pgturns import TurnCounter  # noqa: E402
from softkey import SoftKey, b64url_decode  # noqa: E402
from server import accounts, db as dbmod  # noqa: E402
from server.app import create_app  # noqa: E402
from server.config import load_settings  # noqa: E402
from server.mail import SmtpMailer  # noqa: E402
from server.passwords import Passwords  # noqa: E402

ORIGIN = "http://localhost:8000"
PASSWORD = "correct horse battery"


def measure(server_url: str, redis_url: str | None = None) -> dict[str, int]:
    """Round trips per flow; redis_url: the rate-limit windows there, under a key prefix of their own."""
    admin_url = server_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"tobira_rt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    host, port = re.search(r"@([^:/]+):(\d+)", server_url).groups()
    turns = TurnCounter(host, int(port))
    sink = MailSink().start()
    passwords = Passwords(workers=1)
    try:
        url = re.sub(r"@[^/]+", f"@127.0.0.1:{turns.port}", server_url) + f"/{name}"
        with tempfile.TemporaryDirectory() as data:
            environ = {"TOBIRA_DATA_DIR": data, "TOBIRA_DATABASE_URL": url, "TOBIRA_SMTP_URL": sink.url,
                       "TOBIRA_SECRET_KEY": "r" * 40}
            if redis_url:
                environ["TOBIRA_REDIS_URL"] = redis_url
            settings = dataclasses.replace(load_settings(environ, dotenv=None), redis_key_prefix=name)
            dbmod.upgrade(dbmod.make_engine(url))
            # No mail worker in this process: its polling is not a login's conversation (the login
            # notice is queued in the login's own transaction; the code goes out by SMTP directly).
            app = create_app(dataclasses.replace(settings, new_passkey_hold=0), passwords=passwords,
                             mailer=SmtpMailer(settings.smtp), deliver_mail=False)
            ctx = app.state.ctx
            ctx.db.run_sync(accounts.add_user, customer_code="TARO1234", display_name="山田 太郎",
                            email="taro@example.com", password_hash=passwords.hash(PASSWORD), now=ctx.clock())
            with TestClient(app, headers={"Origin": ORIGIN}) as c:
                key = SoftKey()
                _code_login(c, sink)
                opts = c.post("/api/passkeys/register/options", json={}).json()["publicKey"]
                credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
                assert c.post("/api/passkeys/register/verify", json={"credential": credential}).status_code == 201
                # Each flow several times, the fewest counted: the first runs open the database threads'
                # connections (a thread's first transaction checks one out of the pool, with its own
                # round trips), and which thread takes a transaction is up to the thread pool.
                counts: dict[str, int] = {}
                for _ in range(6):
                    c.post("/api/logout")
                    turns.reset()
                    _passkey_login(c, key)
                    _fewest(counts, "passkey login (options + verify)", turns.reset())
                    c.post("/api/logout")
                    turns.reset()
                    _code_login(c, sink)
                    _fewest(counts, "password + code login", turns.reset())
            ctx.db.close()
            ctx.db.engine.dispose()
        return counts
    finally:
        sink.stop()
        passwords.close()
        turns.close()
        with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fewest(counts: dict[str, int], flow: str, counted: int) -> None:
    counts[flow] = min(counts.get(flow, counted), counted)


def _passkey_login(c: TestClient, key: SoftKey) -> None:
    opts = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
    r = c.post("/api/login/passkey/verify", json=key.get(b64url_decode(opts["challenge"])))
    assert r.status_code == 200, r.text


def _code_login(c: TestClient, sink: MailSink) -> None:
    seen = len(sink.to("taro@example.com"))
    r = c.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    assert r.json()["status"] == "code_sent", r.text
    r = c.post("/api/login/code", json={"code": _new_code(sink, seen)})
    assert r.status_code == 200, r.text


def _new_code(sink: MailSink, seen: int) -> str:
    sink.wait_for(lambda m: len(sink.to("taro@example.com")) > seen)
    return re.search(r"^(\d{6})\r?$", body(sink.to("taro@example.com")[seen]), re.M).group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="for the second count, with the rate-limit windows there ('' to skip it)")
    args = parser.parse_args()
    for where, redis_url in [("windows in PostgreSQL", None), ("windows in Redis", args.redis)]:
        if where.endswith("Redis") and not redis_url:
            continue
        for flow, count in measure(args.postgres, redis_url).items():
            print(f"{flow}, {where}: {count} round trips")


if __name__ == "__main__":
    main()
