"""Attacks on the staff console (issue 15): each test here states what the contract or the issue
promises and tries to break it. A failing test is a weakness found."""

from __future__ import annotations

import ipaddress

import sqlalchemy
from starlette.testclient import TestClient

from server import staff
from server.audit import Actor
from softkey import SoftKey, b64url_decode
from conftest import ORIGIN
from test_staff import CUSTOMER, act, audit_rows, browser, enrol, new_staff


def enrol_with_code(app, name, code, key=None) -> TestClient:
    c = browser(app)
    key = key or SoftKey()
    r = c.post("/api/admin/enrol/options", json={"name": name, "enrolment_code": code})
    assert r.status_code == 200, r.text
    opts = r.json()["publicKey"]
    r = c.post("/api/admin/enrol/verify",
               json=key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"])))
    assert r.status_code == 201, r.text
    return c


def email_of(app, code=CUSTOMER) -> str:
    return app.state.ctx.db.run_sync(lambda db: db.read(sqlalchemy.text(
        "SELECT email FROM users WHERE customer_code = :c"), {"c": code}).scalar_one())


# --- the two-person rule, done by one person ---------------------------------------------------------


def test_one_admin_cannot_approve_their_own_request_through_a_staff_member_they_just_added(app, customer):
    """An admin alone: request the e-mail change, add a second staff member from the console (the
    answer shows the enrolment code), enrol them with a key of one's own, approve. One person did
    both halves of the two-person rule."""
    admin, _ = enrol(app, "kuroda", role="admin")
    r = act(admin, "set-email", reason="caller says new address", email="attacker@evil.example")
    assert r.status_code == 202
    request_id = r.json()["request_id"]
    code = admin.post("/api/admin/staff", json={"name": "kuroda2", "role": "support"}).json()["enrolment_code"]
    puppet = enrol_with_code(app, "kuroda2", code)
    approved = puppet.post(f"/api/admin/approvals/{request_id}", json={})
    assert approved.status_code == 403, "a staff member the requester created (after the request) approved it"
    assert email_of(app) == "taro@example.com"


def test_one_admin_cannot_approve_their_own_request_as_a_colleague_whose_passkeys_they_reset(app, customer):
    """The same through an existing colleague: reset their passkeys from the console (the answer
    shows the new enrolment code), enrol as them, approve."""
    enrol(app, "colleague")
    admin, _ = enrol(app, "kuroda", role="admin")
    r = act(admin, "set-email", reason="caller says new address", email="attacker@evil.example")
    request_id = r.json()["request_id"]
    code = admin.post("/api/admin/staff/colleague/reset-passkeys", json={}).json()["enrolment_code"]
    as_colleague = enrol_with_code(app, "colleague", code)
    approved = as_colleague.post(f"/api/admin/approvals/{request_id}", json={})
    assert approved.status_code == 403, "the requester approved as a colleague whose passkey they enrolled"
    assert email_of(app) == "taro@example.com"


def test_the_approver_sees_the_new_address_they_approve(app, customer):
    """The second person is there to check the request; for set-email they are never shown the
    new address (not in GET /api/admin/approvals, not on /admin/approvals), so they approve blind."""
    requester, _ = enrol(app, "nomura")
    approver, _ = enrol(app, "kudo")
    r = act(requester, "set-email", reason="TICKET-9", email="attacker@evil.example")
    assert r.status_code == 202
    listed = approver.get("/api/admin/approvals").json()["requests"]
    assert "attacker@evil.example" in repr(listed), listed
    assert "attacker@evil.example" in approver.get("/admin/approvals").text


def test_a_disabled_staff_members_pending_requests_die_with_them(app, customer):
    """A staff member caught requesting resets for an impostor is disabled: their session ends, but
    the request stays in every colleague's approval queue and can still be approved."""
    rogue, _ = enrol(app, "rogue")
    colleague, _ = enrol(app, "honest")
    request_id = act(rogue, "set-email", reason="customer called", email="attacker@evil.example").json()["request_id"]
    ctx = app.state.ctx
    ctx.db.run_sync(lambda db: staff.disable(db, "rogue", now=ctx.clock(), actor=Actor.cli()))
    assert colleague.get("/api/admin/approvals").json()["requests"] == []
    r = colleague.post(f"/api/admin/approvals/{request_id}", json={})
    assert r.status_code != 200
    assert email_of(app) == "taro@example.com"


# --- the audit trail -----------------------------------------------------------------------------------


def test_the_audit_says_which_role_an_admin_gave_a_new_staff_member(app):
    """Console `staff_added` records only the name (the CLI records 'NAME as ROLE'): the trail
    cannot tell an admin creating a support member from one creating another admin."""
    admin, _ = enrol(app, "ishii", role="admin")
    assert admin.post("/api/admin/staff", json={"name": "tsuji", "role": "admin"}).status_code == 201
    added = [row for row in audit_rows(app) if row[2] == "staff_added"]
    assert added and "admin" in (added[-1][4] or ""), added


def test_finding_a_customer_is_recorded(app, customer):
    """'find and look at a customer (recorded)': a search by e-mail shows the customer's name,
    e-mail and code, and leaves no audit entry (only the customer page does)."""
    c, _ = enrol(app, "sakai")
    before = len(audit_rows(app))
    found = c.get("/api/admin/customers", params={"q": "taro@example.com"}).json()["customers"]
    assert found and found[0]["customer_code"] == CUSTOMER
    assert len(audit_rows(app)) > before, "the search left no trace in the audit trail"


# --- enrolment -----------------------------------------------------------------------------------------


def test_a_superseded_enrolment_code_cannot_finish_an_enrolment(app):
    """An admin resets a member's passkeys (say the old code leaked): a ceremony begun with the OLD
    code minutes before still completes, and uses up the NEW code."""
    old_code = new_staff(app, "endo")
    thief = browser(app)
    opts = thief.post("/api/admin/enrol/options", json={"name": "endo", "enrolment_code": old_code}).json()["publicKey"]
    ctx = app.state.ctx
    new_code = ctx.db.run_sync(lambda db: staff.reset_passkeys(db, "endo", now=ctx.clock(), actor=Actor.cli()))
    r = thief.post("/api/admin/enrol/verify", json=SoftKey().create(
        b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"])))
    assert r.status_code != 201, "the superseded code enrolled a passkey"
    legit = browser(app).post("/api/admin/enrol/options", json={"name": "endo", "enrolment_code": new_code})
    assert legit.status_code == 200


# --- the network rule ----------------------------------------------------------------------------------


def test_outside_the_admin_networks_every_console_path_is_404(make_app):
    """'answers 404 to everything under /admin and /api/admin from elsewhere': a wrong method
    answers 405 and a trailing slash a redirect, both of which show the console is there."""
    walled = make_app(admin_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    c = TestClient(walled, headers={"Origin": ORIGIN})
    assert c.get("/api/admin/no-such-thing").status_code == 404  # the baseline: nothing there
    shown = []
    for method, path in (("get", "/api/admin/logout"), ("get", "/api/admin/approvals/x"),
                         ("post", "/admin"), ("delete", "/api/admin/session"), ("get", "/admin/login/"),
                         ("get", "/api/admin/session/")):
        r = getattr(c, method)(path, follow_redirects=False)
        if r.status_code != 404:
            shown.append((method, path, r.status_code, r.headers.get("location")))
    assert shown == [], shown


# --- reasons ---------------------------------------------------------------------------------------------


def test_a_reason_is_visible_printable_text(app, customer):
    """The validator says 'a reason is 1-200 printable characters, not blank' but only refuses
    below U+0020: an invisible reason (zero-width space), DEL, an 8-bit ANSI CSI (U+009B) or a
    right-to-left override pass and land in the audit trail."""
    c, _ = enrol(app, "hirano")
    accepted = []
    for reason in ("\u200b", "\u2060\u200b", "\x7f", "\x9b2J\x9b31mok", "TICKET-1 \u202e9876"):
        if act(c, "unlock", reason=reason).status_code == 200:
            accepted.append(reason)
    assert accepted == [], f"accepted as reasons: {accepted!r}"


# --- odd input: 500s -------------------------------------------------------------------------------------


def test_a_page_number_of_unicode_digits_is_no_500(app, customer):
    """`page` is checked with str.isdigit(), which is true for '²' and '①' that int() refuses."""
    support_member, _ = enrol(app, "oshima")
    admin, _ = enrol(app, "ogura", role="admin")
    bad = []
    for c, path in ((support_member, "/api/admin/approvals"), (support_member, "/api/admin/customers?q=x"),
                    (admin, "/api/admin/audit"), (support_member, "/admin/approvals"),
                    (support_member, "/admin?q=x"), (admin, "/admin/audit")):
        for page in ("²", "①"):
            r = c.get(path + ("&" if "?" in path else "?") + "page=" + page)
            if r.status_code >= 500:
                bad.append((path, page, r.status_code))
    assert bad == [], bad


def test_nul_characters_in_path_and_query_are_no_500(app, customer):
    """PostgreSQL refuses NUL in text: the console's lookups pass it straight to the database."""
    support_member, _ = enrol(app, "oka")
    admin, _ = enrol(app, "ogino", role="admin")
    bad = []
    for c, method, path in ((support_member, "get", "/api/admin/customers?q=a%00b"),
                            (support_member, "get", "/api/admin/customers/A%00B"),
                            (support_member, "get", "/admin/customers/A%00B"),
                            (support_member, "post", "/api/admin/approvals/a%00b"),
                            (support_member, "get", "/admin?q=a%00b"),
                            (admin, "get", "/api/admin/audit?staff=a%00b"),
                            (admin, "get", "/api/admin/audit?customer=a%00b&format=csv"),
                            (admin, "get", "/admin/audit?action=a%00b"),
                            (admin, "post", "/api/admin/staff/a%00b/disable"),
                            (admin, "post", "/api/admin/staff/a%00b/reset-passkeys")):
        r = getattr(c, method)(path, **({"json": {}} if method == "post" else {}))
        if r.status_code >= 500:
            bad.append((path, r.status_code))
    r = support_member.post(f"/api/admin/customers/{CUSTOMER}/actions",
                            json={"action": "set-email", "reason": "x", "email": "a\u0000b@example.com"})
    if r.status_code >= 500:
        bad.append(("set-email NUL", r.status_code))
    r = browser(app).post("/api/admin/enrol/options", json={"name": "a\u0000b", "enrolment_code": "x"})
    if r.status_code >= 500:
        bad.append(("enrol name NUL", r.status_code))
    assert bad == [], bad
