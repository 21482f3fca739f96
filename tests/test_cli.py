"""The `tobira` command as an operator uses it (a real subprocess each time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mailsink import free_port


@pytest.fixture
def run(tmp_path):
    env = {**os.environ, "TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_SECRET_KEY": "c" * 40}
    env.pop("TOBIRA_DATABASE_URL", None)

    def run(*args, stdin="", **extra_env):
        return subprocess.run([sys.executable, "-m", "server", *args], input=stdin, capture_output=True, text=True,
                              env={**env, **extra_env}, timeout=60, cwd=tmp_path)

    return run


def add(run, code="TARO1234", email="taro@example.com", password="a good password\n"):
    return run("user", "add", code, "--email", email, "--name", "山田 太郎", "--password-stdin", stdin=password)


def fields(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.strip().splitlines())


def test_add_and_show(run):
    r = add(run)
    assert r.returncode == 0, r.stderr
    shown = run("user", "show", "TARO1234")
    assert shown.returncode == 0
    f = fields(shown.stdout)
    assert f["customer_code"] == "TARO1234" and f["email"] == "taro@example.com"
    assert f["locked"] == "no" and f["passkeys"] == "0" and f["last_login"] == "-"
    assert "a good password" not in shown.stdout + shown.stderr


@pytest.mark.parametrize("args,words", [
    (("TARO1234", "taro@example.com"), "already taken"),
    (("TARO5678", "not-an-email"), "e-mail"),
    (("x", "a@example.com"), "4-20 characters"),
    (("TARO5678", "a@example.com", "short\n"), "8-128"),
])
def test_add_refusals_are_one_line(run, args, words):
    assert add(run).returncode == 0
    r = add(run, *args)
    assert r.returncode != 0 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unknown_customer(run):
    r = run("user", "show", "NOBODY99")
    assert r.returncode == 1 and r.stderr.strip() == "tobira: no customer with code NOBODY99"


def test_unlock_and_set_email(run, tmp_path):
    from server.config import load_settings
    from server import db as dbmod, store

    add(run)
    settings = load_settings({"TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_SECRET_KEY": "c" * 40}, dotenv=None)
    database = dbmod.Database(dbmod.make_engine(settings.database_url))
    user = database.run_sync(store.user_by_code, "TARO1234")
    from datetime import datetime, timezone
    database.run_sync(store.lock_user, user.id, datetime.now(timezone.utc))
    database.engine.dispose()
    assert fields(run("user", "show", "TARO1234").stdout)["locked"] == "password"
    r = run("user", "unlock", "TARO1234")
    assert r.returncode == 0 and "unlocked" in r.stdout and "password lock" in r.stdout
    assert fields(run("user", "show", "TARO1234").stdout)["locked"] == "no"
    assert run("user", "set-email", "TARO1234", "new@example.com").returncode == 0
    assert fields(run("user", "show", "TARO1234").stdout)["email"] == "new@example.com"
    r = run("user", "set-email", "TARO1234", "bad address")
    assert r.returncode == 1 and "e-mail" in r.stderr


def test_db_upgrade_is_idempotent(run):
    assert run("db", "upgrade").returncode == 0
    r = run("db", "upgrade")
    assert r.returncode == 0 and "up to date" in r.stdout


@pytest.mark.parametrize("env,words", [
    ({"TOBIRA_RP_ID": "example.com"}, "does not match origin"),
    ({"TOBIRA_DATABASE_URL": "sqlite:////proc/no/such/dir/tobira.db"}, "database unusable"),
    ({"TOBIRA_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}, "database unusable"),
    ({"TOBIRA_DATABASE_URL": "mysql://x@y/z"}, "not supported"),
])
def test_serve_refuses_to_start_with_one_line(run, env, words):
    r = run("serve", "--port", str(free_port()), **env)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.fixture
def live_customer(tmp_path, mailsink, clock, passwords):
    """TARO1234 with a passkey, a live session and a remembered PC, in the database the CLI uses."""
    from datetime import datetime, timezone
    from starlette.testclient import TestClient
    from server.app import create_app
    from server.config import load_settings
    from server.mail import SmtpMailer
    from softkey import SoftKey, b64url_decode
    from conftest import ORIGIN, add_customer, login

    settings = load_settings({"TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_SECRET_KEY": "c" * 40,
                              "TOBIRA_SMTP_URL": mailsink.url}, dotenv=None)
    clock.now = datetime.now(timezone.utc)  # the CLI reads the real time (the passkey's hold counts from it)
    app = create_app(settings, clock=clock, passwords=passwords, mailer=SmtpMailer(settings.smtp))
    add_customer(app)
    client = TestClient(app, headers={"Origin": ORIGIN})
    with client:
        login(client, mailsink)
        opts = client.post("/api/passkeys/register/options", json={}).json()["publicKey"]
        cred = SoftKey().create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
        assert client.post("/api/passkeys/register/verify", json={"credential": cred}).status_code == 201
        client.post("/api/logout")
        login(client, mailsink, remember=True)  # after the passkey: adding one forgets remembered PCs
    return app, client


def test_end_sessions(run, live_customer):
    app, client = live_customer
    r = run("user", "end-sessions", "TARO1234")
    assert r.returncode == 0 and "ended 1 session" in r.stdout
    with client:
        assert client.get("/api/session").status_code == 401
        # Sessions only: the remembered PC still skips the code.
        r = client.post("/api/login/password", json={"customer_code": "TARO1234", "password": "correct horse battery"})
        assert r.json()["status"] == "ok"


def test_hold_stops_every_sign_in_until_unlock(run, live_customer):
    app, client = live_customer
    r = run("user", "hold", "TARO1234", "--reason", "caller could not confirm the address")
    assert r.returncode == 0 and "ended 1 session" in r.stdout
    shown = fields(run("user", "show", "TARO1234").stdout)
    assert shown["locked"] == "hold" and shown["hold_reason"] == "caller could not confirm the address"
    with client:
        assert client.get("/api/session").status_code == 401
        r = client.post("/api/login/password", json={"customer_code": "TARO1234", "password": "correct horse battery"})
        assert r.status_code == 401  # the password path does not even say that the account is held
    r = run("user", "unlock", "TARO1234")
    assert r.returncode == 0 and "support hold" in r.stdout
    assert fields(run("user", "show", "TARO1234").stdout)["locked"] == "no"
    assert run("user", "hold", "TARO1234", "--reason", "x" * 201).returncode == 1
    kinds = [json.loads(line)["kind"] for line in run("events", "TARO1234").stdout.splitlines()]
    assert "account_held" in kinds and "account_unlocked" in kinds


def test_release_hold(run, live_customer):
    # The passkey was added from a code session: on hold until the desk has called the customer.
    assert fields(run("user", "show", "TARO1234").stdout)["passkeys_on_hold"] == "1"
    r = run("user", "release-hold", "TARO1234")
    assert r.returncode == 0 and "released the hold on 1 passkey" in r.stdout
    assert fields(run("user", "show", "TARO1234").stdout)["passkeys_on_hold"] == "0"
    assert run("user", "release-hold", "NOBODY99").returncode == 1


def test_reset_passkeys(run, live_customer, mailsink, clock):
    from datetime import datetime, timezone
    app, client = live_customer
    assert fields(run("user", "show", "TARO1234").stdout)["passkeys"] == "1"
    r = run("user", "reset-passkeys", "TARO1234")
    assert r.returncode == 0 and "removed 1 passkey" in r.stdout
    assert fields(run("user", "show", "TARO1234").stdout)["passkeys"] == "0"
    assert fields(run("user", "show", "TARO1234").stdout)["trusted_devices"] == "0"
    clock.now = datetime.now(timezone.utc)  # the CLI queued its mail at the real time
    with client:
        assert client.get("/api/session").status_code == 401
        r = client.post("/api/login/password", json={"customer_code": "TARO1234", "password": "correct horse battery"})
        assert r.json()["status"] == "code_sent", "the remembered PC was forgotten"
        # The queued notice goes out through the running server's outbox.
        mailsink.wait_for(lambda m: "パスキーをリセット" in str(m["Subject"]))


def test_events_prints_json_lines_oldest_first(run, live_customer):
    import json
    r = run("events", "TARO1234")
    assert r.returncode == 0
    events = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "account_created" and "login" in kinds and "passkey_added" in kinds
    run("user", "show", "TARO1234")
    run("user", "unlock", "TARO1234")
    kinds = [json.loads(line)["kind"] for line in run("events", "TARO1234").stdout.splitlines()]
    assert kinds[-2:] == ["support_viewed", "account_unlocked"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert "correct horse battery" not in r.stdout
    r = run("events", "NOBODY99")
    assert r.returncode == 1 and r.stderr.strip() == "tobira: no customer with code NOBODY99"


# --- the broker's apps (OpenID Connect) ----------------------------------------------------------

def test_client_add_list_rotate_remove(run):
    r = run("client", "add", "Stock site", "--redirect-uri", "https://stock.example.com/cb",
            "--redirect-uri", "https://stock.example.com/cb2", "--post-logout-redirect-uri", "https://stock.example.com/",
            "--backchannel-logout-uri", "https://stock.example.com/bc", "--require-passkey", "--scope", "openid email")
    assert r.returncode == 0, r.stderr
    made = fields(r.stdout)
    assert set(made) == {"client_id", "client_secret"} and len(made["client_secret"]) >= 43
    r = run("client", "add", "App", "--public", "--redirect-uri", "jp.example.broker:/cb")
    assert r.returncode == 0 and set(fields(r.stdout)) == {"client_id"}  # a public client has no secret
    listed = [json.loads(line) for line in run("client", "list").stdout.splitlines()]
    assert [a["name"] for a in listed] == ["Stock site", "App"]
    assert listed[0]["redirect_uris"] == ["https://stock.example.com/cb", "https://stock.example.com/cb2"]
    assert listed[0]["require_passkey"] is True and listed[0]["scopes"] == "openid email"
    assert made["client_secret"] not in run("client", "list").stdout  # never shown again, nor its hash
    r = run("client", "rotate-secret", made["client_id"])
    assert r.returncode == 0 and fields(r.stdout)["client_secret"] != made["client_secret"]
    r = run("client", "rotate-secret", listed[1]["client_id"])
    assert r.returncode == 1 and "public client" in r.stderr
    assert run("client", "remove", made["client_id"]).returncode == 0
    assert [a["name"] for a in map(json.loads, run("client", "list").stdout.splitlines())] == ["App"]
    r = run("client", "remove", made["client_id"])
    assert r.returncode == 1 and "no client" in r.stderr


@pytest.mark.parametrize("args, words", [
    (("--redirect-uri", "http://stock.example.com/cb"), "https"),  # plain http only to localhost
    (("--redirect-uri", "https://stock.example.com/cb#frag"), "fragment"),
    (("--redirect-uri", "jp.example.broker:/cb"), "public client"),  # private-use schemes: native apps only
    (("--redirect-uri", "https://a.example/cb", "--scope", "profile"), "openid"),
    (("--redirect-uri", "https://a.example/cb", "--scope", "openid admin"), "admin"),
    (("--redirect-uri", "https://a.example/cb", "--backchannel-logout-uri", "http://a.example/bc"), "https"),
])
def test_client_add_refusals_are_one_line(run, args, words):
    r = run("client", "add", "Bad", *args)
    assert r.returncode == 1 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert run("client", "list").stdout == ""  # nothing half-written


def test_keys_rotate_prints_the_new_kids(run):
    r = run("keys", "rotate")
    assert r.returncode == 0 and r.stdout.startswith("new signing keys: ")
    again = run("keys", "rotate")
    assert again.stdout != r.stdout


# --- the staff console's accounts and the audit of CLI actions ----------------------------------


def audit_of(tmp_path) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(tmp_path / "tobira.db") as db:
        return db.execute("SELECT staff, role, action, customer_code, reason FROM audit_log ORDER BY id").fetchall()


def test_staff_add_list_reset_and_disable(run, tmp_path):
    import getpass
    import re

    added = run("staff", "add", "sato", "--role", "support")
    assert added.returncode == 0, added.stderr
    assert re.search(r"^enrolment_code: [A-Z2-9]{4}(-[A-Z2-9]{4}){3}$", added.stdout, re.M)
    listed = [json.loads(line) for line in run("staff", "list").stdout.splitlines()]
    assert listed == [{"name": "sato", "role": "support", "created_at": listed[0]["created_at"], "disabled": False,
                       "passkeys": 0, "enrolment_pending": True}]
    again = run("staff", "add", "sato", "--role", "admin")
    assert again.returncode == 1 and "exists already" in again.stderr
    assert run("staff", "add", "x y", "--role", "admin").returncode == 1
    assert run("staff", "add", "ito", "--role", "boss").returncode == 2  # argparse: not a role
    reset = run("staff", "reset-passkeys", "sato")
    assert reset.returncode == 0 and "enrolment_code: " in reset.stdout
    assert run("staff", "disable", "sato").returncode == 0
    assert json.loads(run("staff", "list").stdout)["disabled"] is True
    assert run("staff", "disable", "nobody").returncode == 1
    operator = f"cli:{getpass.getuser()}"
    assert [row[:3] for row in audit_of(tmp_path)] == [
        (operator, "cli", "staff_added"), (operator, "cli", "staff_passkeys_reset"), (operator, "cli", "staff_disabled")]


def test_support_actions_from_the_shell_are_audited_as_the_cli(run, tmp_path):
    import getpass

    assert add(run).returncode == 0
    assert run("user", "unlock", "TARO1234").returncode == 0
    assert run("user", "hold", "TARO1234", "--reason", "ticket 9").returncode == 0
    assert run("user", "show", "TARO1234").returncode == 0
    operator = f"cli:{getpass.getuser()}"
    assert audit_of(tmp_path) == [(operator, "cli", "unlock", "TARO1234", None),
                                  (operator, "cli", "hold", "TARO1234", "ticket 9"),
                                  (operator, "cli", "customer_viewed", "TARO1234", None)]
