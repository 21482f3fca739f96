"""Web basics: CSRF origin check, body limits, error bodies, headers, language, pages."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from conftest import ORIGIN, PASSWORD, login

STATE_CHANGING = [("POST", "/api/login/password"), ("POST", "/api/login/code"),
                  ("POST", "/api/login/code/resend"), ("POST", "/api/logout")]


def error_code(r):
    assert r.headers["content-type"].startswith("application/json"), r.text
    return r.json()["error"]["code"]


# --- CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", STATE_CHANGING)
@pytest.mark.parametrize("origin", [None, "https://evil.example", "http://localhost:8001", "http://localhost",
                                    "https://localhost:8000", "null", "http://localhost:8000.evil.example"])
def test_state_changing_requests_need_our_origin(app, method, path, origin):
    headers = {"Origin": origin} if origin else {}
    with TestClient(app) as c:
        r = c.request(method, path, json={}, headers=headers)
    assert r.status_code == 403 and error_code(r) == "csrf_rejected"


def test_cross_site_post_with_a_valid_cookie_is_refused(client, customer, mailsink):
    login(client, mailsink)
    r = client.post("/api/logout", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert client.get("/api/session").status_code == 200, "the session survived"


def test_any_configured_origin_is_accepted(make_app):
    app = make_app(origins=("http://localhost:8000", "http://localhost:9000"))
    with TestClient(app) as c:
        r = c.post("/api/login/code", json={"code": "1"}, headers={"Origin": "http://localhost:9000"})
    assert error_code(r) == "no_pending_login"


def test_json_endpoints_demand_json(client, customer):
    r = client.post("/api/login/password", content="customer_code=TARO1234&password=x",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and error_code(r) == "unsupported_media_type"
    r = client.post("/api/login/password", content=json.dumps({"customer_code": "TARO1234", "password": PASSWORD}),
                    headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


# --- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{", b"not json", b"[1,2]", b'"text"', b"null", b"\xff\xfe", b"[" * 5000 + b"]" * 5000])
def test_malformed_bodies_are_400(client, raw):
    r = client.post("/api/login/password", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and error_code(r) == "invalid_request"


def test_bodiless_posts_accept_an_empty_body(client):
    r = client.post("/api/login/code/resend", content=b"")
    assert error_code(r) == "no_pending_login"
    assert client.post("/api/logout", content=b"").status_code == 204


def test_body_over_64_kib_is_413_with_the_error_body(client):
    big = json.dumps({"customer_code": "A" * (64 * 1024), "password": "x"})
    r = client.post("/api/login/password", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "payload_too_large"


def test_chunked_body_over_the_limit_is_413(client):
    def chunks():
        for _ in range(70):
            yield b"x" * 1024

    r = client.post("/api/login/password", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "payload_too_large"


def test_body_at_the_limit_is_read(client):
    body = json.dumps({"customer_code": "TARO1234", "password": "x", "pad": "y" * (64 * 1024 - 100)})
    assert len(body) <= 64 * 1024
    r = client.post("/api/login/password", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401


# --- error bodies ----------------------------------------------------------------------------


def test_unknown_api_path_is_json_404(client):
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_wrong_method_is_json_405(client):
    r = client.get("/api/login/password")
    assert r.status_code == 405 and error_code(r) == "method_not_allowed"


def test_unknown_page_is_an_html_404(client):
    r = client.get("/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="ja">' in r.text


def test_an_unexpected_error_is_a_500_without_traceback(client, customer, monkeypatch):
    from server import login as login_module

    async def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(login_module, "submit_password", boom)
    r = client.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    assert r.status_code == 500 and error_code(r) == "internal_error"
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert "content-security-policy" in r.headers


def test_database_outage_is_503(client, customer, monkeypatch):
    from server.errors import Unavailable

    async def down(*a, **k):
        raise Unavailable()

    monkeypatch.setattr(client.app.state.ctx.db, "run", down)
    r = client.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    assert r.status_code == 503 and error_code(r) == "unavailable"


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [("GET", "/login"), ("GET", "/api/session"), ("GET", "/nothing"),
                                         ("GET", "/api/nothing"), ("POST", "/api/login/code")])
def test_security_headers_on_every_answer(client, method, path):
    r = client.request(method, path, json={} if method == "POST" else None)
    csp = r.headers["content-security-policy"]
    for directive in ("script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["cache-control"] == "no-store"
    assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"])
    assert "strict-transport-security" not in r.headers  # http: HSTS would be ignored anyway


def test_static_files_are_versioned_and_cached(client):
    page = client.get("/login").text
    scripts = re.findall(r'src="(/static/js/[^"]+\?v=[0-9a-f]{12})"', page)
    assert len(scripts) >= 2
    r = client.get(scripts[0])
    assert r.status_code == 200 and "max-age=31536000" in r.headers["cache-control"]


def test_pages_have_no_inline_script(client, customer, mailsink):
    login(client, mailsink)
    for path in ("/login?next=/account", "/account"):
        html = client.get(path).text
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag
        assert not re.search(r"\son[a-z]+=", html), "no inline event handlers"
        assert "style=" not in html


# --- language --------------------------------------------------------------------------------


def test_japanese_by_default(client):
    r = client.post("/api/login/code", json={"code": "1"})
    assert "ログイン" in r.json()["error"]["message"]
    assert '<html lang="ja">' in client.get("/login").text


@pytest.mark.parametrize("how", [{"params": {"lang": "en"}}, {"headers": {"Accept-Language": "en-US,en;q=0.9"}}])
def test_english_on_request(client, how):
    r = client.post("/api/login/code", json={"code": "1"}, **how)
    assert r.json()["error"]["message"].startswith("No login")
    assert '<html lang="en">' in client.get("/login", **how).text


def test_japanese_preferred_over_english(client):
    r = client.post("/api/login/code", json={"code": "1"}, headers={"Accept-Language": "ja,en;q=0.8"})
    assert "ログイン" in r.json()["error"]["message"]


# --- pages -----------------------------------------------------------------------------------


def test_login_page_hooks(client):
    html = client.get("/login").text
    assert 'id="login-form"' in html and 'id="login-submit"' in html
    assert re.search(r'<input[^>]*name="customer_code"[^>]*autocomplete="username webauthn"', html)
    assert re.search(r'<input[^>]*name="password"', html)
    assert re.search(r'<div role="alert"', html)
    # Every input has a label.
    for input_id in re.findall(r'<input id="([^"]+)"', html):
        assert f'for="{input_id}"' in html


def test_code_page_needs_a_pending_login(client, customer):
    r = client.get("/login/code", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD})
    html = client.get("/login/code").text
    assert re.search(r'<input[^>]*name="code"[^>]*autocomplete="one-time-code"[^>]*inputmode="numeric"', html)
    assert 'name="remember_device"' in html and 'id="code-submit"' in html and 'id="code-resend"' in html
    assert "t***@example.com" in html and "taro@example.com" not in html


def test_account_page_needs_a_session(client, customer, mailsink):
    r = client.get("/account", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Faccount"
    login(client, mailsink)
    html = client.get("/account").text
    assert "山田 太郎" in html and 'id="logout"' in html


def test_home_redirects(client, customer, mailsink):
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    login(client, mailsink)
    assert client.get("/", follow_redirects=False).headers["location"] == "/account"


def test_language_switch_keeps_where_the_customer_was_going(client):
    html = client.get("/login?next=/account").text
    link = re.search(r'class="lang-switch" href="([^"]+)"', html).group(1)
    assert link == "/login?next=%2Faccount&amp;lang=en"


# --- passkey pages ---------------------------------------------------------------------------


def _register(c, key):
    from softkey import b64url_decode
    opts = c.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    cred = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    assert c.post("/api/passkeys/register/verify", json={"credential": cred}).status_code == 201


def test_login_page_offers_passkey_login(client):
    html = client.get("/login").text
    assert re.search(r'<button id="passkey-login"', html)
    assert "webauthn.js" in html


def test_account_invites_a_passkey_until_there_is_one(client, customer, mailsink):
    from softkey import SoftKey
    login(client, mailsink)
    html = client.get("/account").text
    assert 'id="passkey-invite"' in html and 'href="/account/passkeys"' in html and 'id="passkey-create"' in html
    _register(client, SoftKey())
    html = client.get("/account").text
    assert 'id="passkey-invite"' not in html and 'href="/account/passkeys"' in html


def test_passkeys_page_hooks(client, customer, mailsink):
    from softkey import SoftKey
    login(client, mailsink)
    _register(client, SoftKey(synced=True))
    _register(client, SoftKey(synced=False))
    html = client.get("/account/passkeys").text
    rows = re.findall(r'<li data-passkey-id="([A-Za-z0-9_-]+)"', html)
    assert len(rows) == 2
    for hook in ('class="passkey-name"', 'data-action="rename"', 'name="passkey_name"', 'data-action="save"',
                 'data-action="delete"', '<dialog id="delete-dialog"', 'data-action="confirm"', 'id="passkey-add"'):
        assert hook in html, hook
    assert "同期パスキー" in html and "この端末のみ" in html  # synced vs this-device-only, explained
    assert re.search(r'<time datetime="[^"]+\+00:00">\d{4}-\d\d-\d\d \d\d:\d\d JST</time>', html)
    assert not re.search(r'id="passkey-add"[^>]*disabled', html)


def test_add_button_is_disabled_at_the_limit_with_the_reason(make_app, mailsink):
    from softkey import SoftKey
    from starlette.testclient import TestClient
    from conftest import add_customer
    app = make_app(max_passkeys=2)
    add_customer(app)
    with TestClient(app, headers={"Origin": ORIGIN}) as c:
        login(c, mailsink)
        _register(c, SoftKey())
        _register(c, SoftKey())
        html = c.get("/account/passkeys").text
        assert re.search(r'<button id="passkey-add"[^>]*disabled', html)
        status = re.search(r'<div role="status"[^>]*id="passkeys-limit"[^>]*>([^<]*)</div>', html).group(1)
        assert "2個まで" in status and 'aria-describedby="passkeys-limit"' in html


def test_passkeys_page_needs_a_session(client):
    r = client.get("/account/passkeys", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Faccount%2Fpasskeys"


def test_activity_page_lists_events_newest_first(client, customer, mailsink, clock):
    client.post("/api/login/password", json={"customer_code": "TARO1234", "password": "wrong password"})
    clock.advance(5)
    login(client, mailsink)
    html = client.get("/account/activity").text
    kinds = re.findall(r'<tr data-event="([a-z_]+)"', html)
    assert kinds[:3] == ["login", "code_sent", "login_failed"]
    stamps = re.findall(r'<time datetime="([^"]+)"', html)
    assert stamps == sorted(stamps, reverse=True) and all(s.endswith("+00:00") for s in stamps)
    assert "ログイン（メールの確認コード）" in html and "ログインに失敗（パスワード）" in html
    assert "JST" in html
    en = client.get("/account/activity?lang=en").text
    assert "Logged in (e-mailed code)" in en


def test_activity_page_needs_a_session(client):
    r = client.get("/account/activity", follow_redirects=False)
    assert r.status_code == 303 and "next=%2Faccount%2Factivity" in r.headers["location"]


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


def test_not_ready_when_the_database_does_not_answer(make_app):
    from sqlalchemy.exc import OperationalError
    app = make_app()
    with TestClient(app) as c:
        def down(*a, **k):
            raise OperationalError("SELECT 1", {}, Exception("could not connect to server"))
        app.state.ctx.db.engine.pool._creator = down
        app.state.ctx.db.engine.dispose()
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"


@pytest.mark.parametrize("origin", ["http://localhost:8000", "https://example.com"])
def test_the_session_cookie_header_is_what_starlettes_set_cookie_writes(origin):
    """web/auth.py writes the Set-Cookie header itself (made once, for speed): it must stay the
    very header Starlette's set_cookie would write with the same attributes."""
    from starlette.responses import Response

    from server.config import load_settings
    from server.web.auth import Cookies

    rp_id = "localhost" if "localhost" in origin else "example.com"
    cookies = Cookies(load_settings({"TOBIRA_ORIGIN": origin, "TOBIRA_RP_ID": rp_id, "TOBIRA_SECRET_KEY": "k" * 40,
                                     "TOBIRA_DATABASE_URL": "sqlite:////tmp/unused.db"}))
    ours, theirs = Response(), Response()
    cookies.set_session(ours, "session-id_0123456789")
    theirs.set_cookie(cookies.session_name, cookies._signer.sign("session-id_0123456789").decode(),
                      max_age=cookies.session_max_age, path="/", secure=cookies.secure, httponly=True, samesite="lax")
    assert [h for h in ours.raw_headers if h[0] == b"set-cookie"] == \
        [h for h in theirs.raw_headers if h[0] == b"set-cookie"]
    assert (b"; Secure" in ours.raw_headers[-1][1]) == origin.startswith("https")
