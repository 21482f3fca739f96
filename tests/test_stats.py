"""`tobira stats` (contract: "Numbers"): adoption counts against a database seeded with known answers."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from server import stats, store
from conftest import add_customer


def _passkey(db, user_id, n, *, synced, hold_until=None, when):
    return store.add_credential(db, user_id=user_id, credential_id=bytes([n]) * 16, public_key=b"\xa5",
                                algorithm=-7, sign_count=0, aaguid="00000000-0000-0000-0000-000000000000",
                                transports="internal", backup_eligible=synced, backup_state=synced, name=f"k{n}",
                                created_at=when, hold_until=hold_until)


def seed(app, now):
    """Five customers: A (active, synced passkey), B (active, device-bound passkey on hold),
    C (active, no passkey), D (inactive 40 days, no passkey), E (never logged in)."""
    db = app.state.ctx.db
    users = {code: add_customer(app, code=code, email=f"{code.lower()}@example.com")
             for code in ("AAAA1111", "BBBB2222", "CCCC3333", "DDDD4444", "EEEE5555")}
    day = timedelta(days=1)

    def write(d):
        _passkey(d, users["AAAA1111"].id, 1, synced=True, when=now - 10 * day)
        _passkey(d, users["BBBB2222"].id, 2, synced=False, hold_until=now + day, when=now - day)
        for code, ago in (("AAAA1111", day), ("BBBB2222", 2 * day), ("CCCC3333", 29 * day), ("DDDD4444", 40 * day)):
            store.record_login(d, users[code].id, now - ago)
        # Logins as events, at known Japan-time days: now is 2026-11-20 10:00 JST.
        jst_midnight = datetime(2026, 11, 20, 0, 0, tzinfo=timezone(timedelta(hours=9)))
        for when, method in ((jst_midnight + timedelta(minutes=1), "passkey"),  # 11-20 JST (11-19 UTC)
                             (jst_midnight - timedelta(minutes=1), "email_code"),  # 11-19 JST
                             (jst_midnight - timedelta(minutes=2), "email_code"),
                             (now - 29 * day, "trusted_device"),  # the oldest day shown
                             (now - 31 * day, "passkey")):  # before the window
            store.add_event(d, kind="login", when=when, user_id=users["AAAA1111"].id, method=method)
        store.add_event(d, kind="passkey_added", when=now - day, user_id=users["BBBB2222"].id, automatic=True,
                        name="k2")
        store.add_event(d, kind="passkey_added", when=now - day, user_id=users["AAAA1111"].id, name="k1")
    db.run_sync(write)
    return users


def test_adoption_numbers_are_the_seeded_ones(app, clock):
    now = clock()
    seed(app, now)
    settings = dataclasses.replace(app.state.ctx.settings, passkey_mandatory_from=now + timedelta(days=45, hours=1))
    numbers = app.state.ctx.db.run_sync(stats.adoption, settings, now)
    days = numbers.pop("logins_by_day")
    assert numbers == {"customers": 5, "with_passkey": 2, "active_30d": 3, "active_30d_with_passkey": 2,
                       "active_30d_without_passkey": 1, "synced": 1, "device_bound": 1, "on_hold": 1,
                       "automatic_upgrades": 1, "days_to_mandatory": 46}
    assert len(days) == 30 and list(days)[-1] == "2026-11-20" and list(days)[0] == "2026-10-22"
    assert days["2026-11-20"] == {"passkey": 1, "email_code": 0, "trusted_device": 0}
    assert days["2026-11-19"] == {"passkey": 0, "email_code": 2, "trusted_device": 0}
    assert days["2026-10-22"]["trusted_device"] == 1
    assert sum(sum(d.values()) for d in days.values()) == 4  # the one 31 days ago is not shown
    assert app.state.ctx.db.run_sync(stats.to_reach, now) == ["CCCC3333"]


def test_no_date_no_days(app, clock):
    assert app.state.ctx.db.run_sync(stats.adoption, app.state.ctx.settings, clock())["days_to_mandatory"] is None


def test_the_command_prints_json_csv_and_lines(app, clock, settings, tmp_path):
    now = datetime.now(timezone.utc)  # the command's own clock is the real one
    seed(app, now)
    env = {**os.environ, "TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_DATABASE_URL": settings.database_url,
           "TOBIRA_SECRET_KEY": settings.secret_key}

    def run(*args):
        r = subprocess.run([sys.executable, "-m", "server", "stats", *args], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    numbers = json.loads(run("--json"))
    assert numbers["active_30d_without_passkey"] == 1 and numbers["automatic_upgrades"] == 1
    assert run("--csv").splitlines() == ["customer_code", "CCCC3333"]
    lines = run().splitlines()
    assert "customers: 5" in lines and "days_to_mandatory: -" in lines
    assert sum(line.startswith("logins ") for line in lines) == 30
