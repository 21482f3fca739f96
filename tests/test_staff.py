"""The staff console's API (issue 15; contract: "Staff console"): staff are not customers, sign in
with passkeys only, act with a reason; the two actions a social engineer wants need a second staff
member; everything is in an audit trail nobody can change."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy
from starlette.testclient import TestClient

from server import staff
from server.audit import Actor
from mailsink import body
from softkey import SoftKey, b64url_decode
from conftest import ORIGIN, login

CUSTOMER = "TARO1234"


def new_staff(app, name, role="support") -> str:
    ctx = app.state.ctx
    return ctx.db.run_sync(lambda db: staff.add(db, name, role, now=ctx.clock(), actor=Actor.cli())[1])


def browser(app) -> TestClient:
    return TestClient(app, headers={"Origin": ORIGIN})


def enrol(app, name, role="support", key=None) -> tuple[TestClient, SoftKey]:
    """A staff member added, enrolled with a passkey, signed in, in a browser of their own."""
    code = new_staff(app, name, role)
    c = browser(app)
    key = key or SoftKey()
    r = c.post("/api/admin/enrol/options", json={"name": name, "enrolment_code": code})
    assert r.status_code == 200, r.text
    opts = r.json()["publicKey"]
    assert opts["authenticatorSelection"]["userVerification"] == "required"
    r = c.post("/api/admin/enrol/verify",
               json=key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"])))
    assert r.status_code == 201, r.text
    assert r.json() == {"name": name, "role": role}
    return c, key


def sign_in(c, key):
    opts = c.post("/api/admin/login/options", json={}).json()["publicKey"]
    return c.post("/api/admin/login/verify", json=key.get(b64url_decode(opts["challenge"])))


def act(c, action, reason="TICKET-1234", code=CUSTOMER, **extra):
    return c.post(f"/api/admin/customers/{code}/actions", json={"action": action, "reason": reason, **extra})


def audit_rows(app):
    return app.state.ctx.db.run_sync(lambda db: list(db.read(sqlalchemy.text(
        "SELECT staff, role, action, customer_code, reason FROM audit_log ORDER BY id"))))


# --- staff are not customers -------------------------------------------------------------------


def test_enrol_then_sign_in_with_the_passkey_only(app):
    c, key = enrol(app, "sato")
    assert c.get("/api/admin/session").json() == {"name": "sato", "role": "support"}
    assert c.post("/api/admin/logout", json={}).status_code == 204
    assert c.get("/api/admin/session").status_code == 401
    r = sign_in(c, key)
    assert r.status_code == 200 and r.json() == {"name": "sato", "role": "support"}
    assert c.get("/api/admin/session").status_code == 200


def test_an_enrolment_code_works_once_and_for_24_hours(app, clock):
    code = new_staff(app, "suzuki")
    c = browser(app)
    wrong = c.post("/api/admin/enrol/options", json={"name": "suzuki", "enrolment_code": "AAAA-BBBB-CCCC-DDDD"})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "enrolment_invalid"
    unknown = c.post("/api/admin/enrol/options", json={"name": "nobody", "enrolment_code": code})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "enrolment_invalid"
    clock.advance(24 * 3600)
    late = c.post("/api/admin/enrol/options", json={"name": "suzuki", "enrolment_code": code})
    assert late.status_code == 400 and late.json()["error"]["code"] == "enrolment_invalid"


def test_a_used_enrolment_code_is_refused(app):
    code = new_staff(app, "tanaka")
    c = browser(app)
    opts = c.post("/api/admin/enrol/options", json={"name": "tanaka", "enrolment_code": code}).json()["publicKey"]
    key = SoftKey()
    assert c.post("/api/admin/enrol/verify", json=key.create(
        b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))).status_code == 201
    again = browser(app).post("/api/admin/enrol/options", json={"name": "tanaka", "enrolment_code": code})
    assert again.status_code == 400 and again.json()["error"]["code"] == "enrolment_invalid"


def test_a_customers_passkey_signs_no_staff_in(app, client, customer, mailsink):
    login(client, mailsink)
    opts = client.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    key = SoftKey()
    assert client.post("/api/passkeys/register/verify", json={"credential": key.create(
        b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))}).status_code == 201
    r = sign_in(browser(app), key)
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"


def test_a_customer_session_is_no_staff_session_and_the_reverse(app, client, customer, mailsink):
    login(client, mailsink)
    assert client.get("/api/admin/session").status_code == 401
    assert client.get(f"/api/admin/customers/{CUSTOMER}").status_code == 401
    c, _ = enrol(app, "ito")
    assert c.get("/api/session").status_code == 401
    assert c.get("/api/passkeys").status_code == 401


def test_a_disabled_staff_members_session_ends_at_once(app):
    c, key = enrol(app, "kato")
    ctx = app.state.ctx
    ctx.db.run_sync(lambda db: staff.disable(db, "kato", now=ctx.clock(), actor=Actor.cli()))
    assert c.get("/api/admin/session").status_code == 401
    r = sign_in(c, key)
    assert r.status_code == 401 and r.json()["error"]["code"] == "passkey_rejected"


def test_staff_sessions_end_after_15_idle_minutes_and_8_hours(app, clock):
    c, key = enrol(app, "mori")
    clock.advance(15 * 60)
    assert c.get("/api/admin/session").status_code == 401
    assert sign_in(c, key).status_code == 200
    minutes = 0
    while c.get("/api/admin/session").status_code == 200:  # busy all day, never idle for 15 minutes
        clock.advance(14 * 60)
        minutes += 14
    assert 8 * 60 <= minutes < 8 * 60 + 14  # ended at the 8-hour limit, not before


def test_outside_the_admin_networks_the_console_does_not_exist(make_app, app):
    import ipaddress

    walled = make_app(admin_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    c = TestClient(walled, headers={"Origin": ORIGIN})  # the test client's address is not in 10/8
    for method, path in (("get", "/api/admin/session"), ("post", "/api/admin/login/options"),
                         ("get", "/api/admin/audit")):
        r = getattr(c, method)(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
    assert browser(app).post("/api/admin/login/options", json={}).status_code == 200


# --- acting with a reason ------------------------------------------------------------------------------


def test_every_action_needs_a_reason(app, customer):
    c, _ = enrol(app, "abe")
    for payload in ({"action": "unlock"}, {"action": "unlock", "reason": "   "}, {"action": "unlock", "reason": 7},
                    {"action": "explode", "reason": "x"}):
        r = c.post(f"/api/admin/customers/{CUSTOMER}/actions", json=payload)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", payload


def test_find_and_look_at_a_customer_is_recorded(app, customer):
    c, _ = enrol(app, "ueda")
    assert c.get("/api/admin/customers", params={"q": "taro@example.com"}).json()["customers"] == [
        {"customer_code": CUSTOMER, "display_name": "山田 太郎", "email": "taro@example.com"}]
    shown = c.get(f"/api/admin/customers/{CUSTOMER}").json()
    assert shown["locked"] == "no" and shown["passkeys"] == [] and isinstance(shown["events"], list)
    assert ("ueda", "support", "customer_viewed", CUSTOMER, None) in audit_rows(app)
    assert c.get("/api/admin/customers/NOBODY99").status_code == 404


def test_unlock_is_done_at_once_and_audited_with_its_reason(app, customer):
    c, _ = enrol(app, "ono")
    r = act(c, "unlock", reason="電話で本人確認済み #5521")
    assert r.status_code == 200 and r.json() == {"status": "done"}
    assert ("ono", "support", "unlock", CUSTOMER, "電話で本人確認済み #5521") in audit_rows(app)


# --- two people for a passkey reset and an e-mail change -------------------------------------------


def test_a_passkey_reset_waits_for_a_second_staff_member(app, client, customer, mailsink, clock):
    # (`client` runs the app's lifespan: the outbox worker that sends the mail)
    requester, _ = enrol(app, "nakamura")
    approver, _ = enrol(app, "kobayashi", role="admin")
    r = act(requester, "reset-passkeys", reason="lost phone, ticket 88")
    assert r.status_code == 202 and r.json()["status"] == "pending_approval"
    request_id = r.json()["request_id"]
    mailsink.wait_for(lambda m: m["To"] == "taro@example.com" and "依頼" in str(m["Subject"]))
    assert [q["request_id"] for q in approver.get("/api/admin/approvals").json()["requests"]] == [request_id]

    own = requester.post(f"/api/admin/approvals/{request_id}", json={})
    assert own.status_code == 403 and own.json()["error"]["code"] == "same_staff"
    done = approver.post(f"/api/admin/approvals/{request_id}", json={})
    assert done.status_code == 200 and done.json() == {"status": "done"}
    mailsink.wait_for(lambda m: m["To"] == "taro@example.com" and "パスキーをリセット" in str(m["Subject"]))
    again = approver.post(f"/api/admin/approvals/{request_id}", json={})
    assert again.status_code == 410 and again.json()["error"]["code"] == "expired"
    actions = [row[2] for row in audit_rows(app)]
    assert "request:reset-passkeys" in actions and "approve:reset-passkeys" in actions


def test_an_email_change_not_approved_within_the_hour_is_void(app, customer, clock):
    requester, _ = enrol(app, "yamamoto")
    approver, key = enrol(app, "watanabe")
    r = act(requester, "set-email", reason="customer called", email="new@example.com")
    assert r.status_code == 202
    clock.advance(3600)
    assert sign_in(approver, key).status_code == 200  # (an hour idle ended the staff session too)
    late = approver.post(f"/api/admin/approvals/{r.json()['request_id']}", json={})
    assert late.status_code == 410 and late.json()["error"]["code"] == "expired"
    assert approver.get(f"/api/admin/customers/{CUSTOMER}").json()["email"] == "taro@example.com"


def test_set_email_needs_an_address(app, customer):
    c, _ = enrol(app, "sasaki")
    r = act(c, "set-email")
    assert r.status_code == 422


# --- the audit trail -------------------------------------------------------------------------------


def test_the_audit_trail_is_for_admins_newest_first_and_as_csv(app, customer):
    support_member, _ = enrol(app, "hayashi")
    admin, _ = enrol(app, "shimizu", role="admin")
    act(support_member, "unlock", reason="=cmd|' /C calc'!A0")
    r = support_member.get("/api/admin/audit")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    entries = admin.get("/api/admin/audit").json()["entries"]
    assert entries[0]["action"] == "unlock" and entries[0]["staff"] == "hayashi"
    assert admin.get("/api/admin/audit", params={"staff": "shimizu"}).json()["entries"][0]["staff"] == "shimizu"
    text = admin.get("/api/admin/audit", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["reason"] == "'=cmd|' /C calc'!A0"  # not a formula in a spreadsheet


def test_no_one_can_change_or_delete_an_audit_entry(app, customer):
    c, _ = enrol(app, "fujita")
    act(c, "unlock")
    db = app.state.ctx.db
    for statement in ("UPDATE audit_log SET reason = 'nothing'", "DELETE FROM audit_log"):
        with pytest.raises(sqlalchemy.exc.DatabaseError):
            db.run_sync(lambda tx: tx.execute(sqlalchemy.text(statement)))
    assert len(audit_rows(app)) >= 2


def test_mail_bodies_stay_plain(app, client, customer, mailsink):
    requester, _ = enrol(app, "okada")
    act(requester, "set-email", reason="x", email="new@example.com")
    msg = mailsink.wait_for(lambda m: m["To"] == "taro@example.com" and "依頼" in str(m["Subject"]))
    assert "http" not in body(msg)


# --- the pages ---------------------------------------------------------------------------------------


def test_the_console_pages_render_for_each_role(app, customer):
    support_member, _ = enrol(app, "kimura")
    admin, _ = enrol(app, "hashimoto", role="admin")
    assert browser(app).get("/admin", follow_redirects=False).headers["location"] == "/admin/login"
    assert browser(app).get("/admin/login").status_code == 200
    assert browser(app).get("/admin/enrol").status_code == 200
    for path in ("/admin", "/admin?q=TARO1234", f"/admin/customers/{CUSTOMER}", "/admin/approvals"):
        r = support_member.get(path)
        assert r.status_code == 200, path
        assert "kimura" in r.text
    assert support_member.get("/admin/customers/NOBODY99").status_code == 404
    for path in ("/admin/audit", "/admin/staff", "/admin/adoption"):
        assert support_member.get(path).status_code == 404, path  # not for support: no such page
        r = admin.get(path + "?lang=en")
        assert r.status_code == 200, path
        assert 'lang="en"' in r.text
    assert "<svg" in admin.get("/admin/adoption").text


def test_an_admin_manages_staff_from_the_console(app):
    admin, _ = enrol(app, "ishikawa", role="admin")
    r = admin.post("/api/admin/staff", json={"name": "ogawa", "role": "support"})
    assert r.status_code == 201 and len(r.json()["enrolment_code"]) == 19
    taken = admin.post("/api/admin/staff", json={"name": "ogawa", "role": "support"})
    assert taken.status_code == 422
    assert admin.post("/api/admin/staff/ogawa/reset-passkeys", json={}).status_code == 200
    assert admin.post("/api/admin/staff/ogawa/disable", json={}).status_code == 200
    support_member, _ = enrol(app, "goto")
    r = support_member.post("/api/admin/staff", json={"name": "x", "role": "admin"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    actions = [row[2] for row in audit_rows(app)]
    assert {"staff_added", "staff_passkeys_reset", "staff_disabled"} <= set(actions)


def test_the_audit_trail_filters_by_jst_day(app, customer, clock):
    admin, _ = enrol(app, "sugiyama", role="admin")  # the test clock: 2026-11-20 10:00 JST
    act(admin, "unlock")
    day = lambda **q: admin.get("/api/admin/audit", params=q)  # noqa: E731
    assert [e["action"] for e in day(**{"from": "2026-11-20", "to": "2026-11-20"}).json()["entries"]][0] == "unlock"
    assert day(**{"from": "2026-11-21"}).json()["entries"] == []
    assert day(to="2026-11-19").json()["entries"] == []
    for bad in ({"from": "2026-13-01"}, {"to": "yesterday"}, {"from": "２０２６-11-20"}):
        r = day(**bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", bad
    assert admin.get("/admin/audit", params={"from": "nonsense"}).status_code == 200  # the page ignores it


def test_on_https_the_staff_cookie_is_host_prefixed_secure_and_strict(make_app):
    app = make_app(origins=("https://example.com",), rp_id="example.com")
    code = new_staff(app, "nishida")
    with TestClient(app, base_url="https://example.com", headers={"Origin": "https://example.com"}) as c:
        opts = c.post("/api/admin/enrol/options", json={"name": "nishida", "enrolment_code": code}).json()["publicKey"]
        key = SoftKey(rp_id="example.com", origin="https://example.com")
        r = c.post("/api/admin/enrol/verify",
                   json=key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"])))
        assert r.status_code == 201, r.text
        cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie" and "tobira_staff=" in v][0]
        assert cookie.startswith("__Host-tobira_staff=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert "Domain" not in cookie and "Path=/" in cookie
        assert c.get("/api/admin/session").json() == {"name": "nishida", "role": "support"}
