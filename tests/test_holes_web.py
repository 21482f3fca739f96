"""Holes a review found at the web edge (security.md §26, §36-§38): IPv6 clients keyed by their /64,
every X-Forwarded-For line read, the unauthenticated passkey-login options bounded, no link to
another site on any page, and JSON text that is not Unicode refused as malformed, never a 500."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from server import app as app_module
from server.models import Ceremony, Credential, OneTimeCode, SecurityEvent, Session, User
from softkey import ES256, SoftKey, b64url, b64url_decode
from conftest import ORIGIN, PASSWORD, add_customer, login

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def client_from(app, ip, **kw):
    return TestClient(app, headers={"Origin": ORIGIN}, client=(ip, 50000), **kw)


def attempt(c, code="TARO1234", pw="wrong password", **kw):
    return c.post("/api/login/password", json={"customer_code": code, "password": pw}, **kw)


def count(app, model) -> int:
    return app.state.ctx.db.run_sync(lambda d: d.execute(select(func.count()).select_from(model)).scalar_one())


def rows(app, model) -> list:
    return app.state.ctx.db.run_sync(lambda d: list(d.execute(select(model))))


def assert_limited(r):
    """The contract's 429: its body with retry_after, and a Retry-After header that says the same."""
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "rate_limited" and error["message"]
    assert isinstance(error["retry_after"], int) and error["retry_after"] >= 1
    assert r.headers["retry-after"] == str(error["retry_after"])
    return error


def register_passkey(app, mailsink, key, ip="198.51.100.200"):
    with client_from(app, ip) as owner:
        login(owner, mailsink)
        opts = owner.post("/api/passkeys/register/options", json={}).json()["publicKey"]
        credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
        r = owner.post("/api/passkeys/register/verify", json={"credential": credential})
        assert r.status_code == 201, r.text


# --- security.md §36: an IPv6 client is its /64 --------------------------------------------------


def test_case36_failed_sign_ins_from_one_ipv6_64_count_together(make_app):
    """31 failed sign-ins, each from another address inside one /64: the 31st is refused (the
    default 30/minute); another /64 is not affected; events keep each real address."""
    app = make_app()
    assert app.state.ctx.settings.rate_limit == (30, 60)
    net = ipaddress.ip_network("2001:db8:1:2::/64")
    used = []
    for i in range(30):
        ip = str(net[1 + i * 0x1_0000_0001])
        used.append(ip)
        with client_from(app, ip) as c:  # an unknown code each time: only the address limit applies
            assert attempt(c, code=f"NOBODY{i:02d}").status_code == 401
    with client_from(app, str(net[0xFFFF_FFFF_FFFF])) as c:
        assert_limited(attempt(c, code="NOBODY99"))
    with client_from(app, "2001:db8:1:3::1") as other:  # the next /64
        assert attempt(other, code="NOBODY98").status_code == 401
    recorded = {e.ip for e in rows(app, SecurityEvent) if e.kind == "login_failed"}
    assert set(used) <= recorded, "logs and events keep the real address, not the /64"
    assert not any("/" in (ip or "") for ip in recorded)


def test_case36_ipv4_stays_per_address(make_app):
    app = make_app(rate_limit=(2, 60), customer_rate_limit=None, lock_after_failures=100)
    add_customer(app)
    with client_from(app, "203.0.113.1") as c:
        assert [attempt(c).status_code for _ in range(2)] == [401, 401]
        assert_limited(attempt(c))
    with client_from(app, "203.0.113.2") as neighbour:  # same /24, another address
        assert attempt(neighbour, pw=PASSWORD).json()["status"] == "code_sent"


def test_case36_an_ipv6_64_through_a_trusted_proxy_counts_together(make_app):
    app = make_app(rate_limit=(2, 60), customer_rate_limit=None, lock_after_failures=100, trusted_proxies=PROXIES)
    add_customer(app)
    with client_from(app, "10.0.0.1") as proxy:
        for ip in ("2001:db8:9:9::1", "2001:db8:9:9:ffff::2"):
            proxy.headers["X-Forwarded-For"] = ip
            assert attempt(proxy).status_code == 401
        proxy.headers["X-Forwarded-For"] = "2001:db8:9:9:abcd::3"
        assert_limited(attempt(proxy))
        proxy.headers["X-Forwarded-For"] = "2001:db8:9:a::1"
        assert attempt(proxy, pw=PASSWORD).json()["status"] == "code_sent"


# --- security.md §36: every X-Forwarded-For line, in order ---------------------------------------


def _last_event_ip(app) -> str:
    return max(rows(app, SecurityEvent), key=lambda e: e.id).ip


def test_case36_x_forwarded_for_client_on_the_first_line_proxy_on_the_second(make_app):
    app = make_app(trusted_proxies=PROXIES)
    add_customer(app)
    with client_from(app, "10.1.2.3") as proxy:
        r = attempt(proxy, headers=[("X-Forwarded-For", "203.0.113.50"), ("X-Forwarded-For", "10.0.0.7")])
        assert r.status_code == 401
    assert _last_event_ip(app) == "203.0.113.50"


def test_case36_x_forwarded_for_a_fake_first_line_does_not_hide_the_client(make_app):
    """The client writes the first line (any address it likes); the trusted proxy appends the
    client's real address on a line of its own. The real address is the one counted and recorded."""
    app = make_app(rate_limit=(3, 60), customer_rate_limit=None, lock_after_failures=100, trusted_proxies=PROXIES)
    add_customer(app)
    with client_from(app, "10.1.2.3") as proxy:
        for i in range(3):
            lines = [("X-Forwarded-For", f"198.51.100.{i + 1}"), ("X-Forwarded-For", "203.0.113.60")]
            assert attempt(proxy, headers=lines).status_code == 401
            assert _last_event_ip(app) == "203.0.113.60"
        assert_limited(attempt(proxy, headers=[("X-Forwarded-For", "198.51.100.99"),
                                               ("X-Forwarded-For", "203.0.113.60")]))
        # The same real client, one line only: the same counter.
        assert_limited(attempt(proxy, headers={"X-Forwarded-For": "203.0.113.60"}))


# --- security.md §37: unauthenticated login options ----------------------------------------------


def options_without_cookie(app, ip):
    with client_from(app, ip) as c:
        return c.post("/api/login/passkey/options", json={})


def test_case37_login_options_are_limited_per_address_before_anything_is_written(make_app, clock):
    app = make_app(login_options_limit=(5, 60))
    assert [options_without_cookie(app, "203.0.113.70").status_code for _ in range(5)] == [200] * 5
    assert (count(app, Session), count(app, Ceremony)) == (5, 5)
    r = options_without_cookie(app, "203.0.113.70")
    error = assert_limited(r)
    assert error["retry_after"] <= 60 and "set-cookie" not in r.headers
    en = client_from(app, "203.0.113.70").post("/api/login/passkey/options?lang=en", json={}).json()["error"]
    assert en["message"] == f"Too many requests. Please try again in {en['retry_after']} seconds."
    assert (count(app, Session), count(app, Ceremony)) == (5, 5), "a refused ask writes nothing"
    assert options_without_cookie(app, "198.51.100.70").status_code == 200, "other addresses are not affected"
    clock.advance(61)
    assert options_without_cookie(app, "203.0.113.70").status_code == 200, "the window passes"


def test_case37_login_options_limit_keys_ipv6_by_64(make_app):
    app = make_app(login_options_limit=(3, 60))
    for ip in ("2001:db8:7:7::1", "2001:db8:7:7::2", "2001:db8:7:7:1::3"):
        assert options_without_cookie(app, ip).status_code == 200
    assert_limited(options_without_cookie(app, "2001:db8:7:7:ffff::4"))
    assert options_without_cookie(app, "2001:db8:7:8::1").status_code == 200


def test_case37_by_default_a_flood_from_one_address_makes_at_most_the_limits_rows(app, settings):
    assert settings.login_options_limit == (60, 60)
    statuses = [options_without_cookie(app, "203.0.113.71").status_code for _ in range(70)]
    assert statuses == [200] * 60 + [429] * 10
    assert count(app, Session) <= 60 and count(app, Ceremony) <= 60


def test_case37_one_cookie_asking_again_and_again_keeps_a_few_ceremonies(make_app, mailsink, clock):
    """A browser that loops on options keeps one session and its newest few ceremonies; the page
    asking twice (autofill, then the button) can still log in with the first answer."""
    app = make_app()
    add_customer(app)
    key = SoftKey(ES256)
    register_passkey(app, mailsink, key)
    before_sessions, before = count(app, Session), count(app, Ceremony)
    with client_from(app, "203.0.113.72") as c:
        for _ in range(40):
            assert c.post("/api/login/passkey/options", json={}).status_code == 200
            clock.advance(1)
        assert count(app, Session) == before_sessions + 1
        assert count(app, Ceremony) - before <= 3
        autofill = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
        clock.advance(1)
        button = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
        assert button["challenge"] != autofill["challenge"]
        r = c.post("/api/login/passkey/verify", json=key.get(b64url_decode(autofill["challenge"])))
        assert r.status_code == 200, r.text


def _sweep_once(app) -> None:
    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(app_module._sweep(app.state.ctx, stop, every=0.01))
        await asyncio.sleep(0.3)
        stop.set()
        await task

    asyncio.run(run())


def test_case37_after_the_ttl_the_sweep_leaves_nothing(make_app, clock):
    app = make_app()
    for i in range(5):
        assert options_without_cookie(app, f"203.0.113.{80 + i}").status_code == 200
    assert (count(app, Session), count(app, Ceremony)) == (5, 5)
    clock.advance(6 * 60)
    _sweep_once(app)
    assert count(app, Ceremony) == 0, "expired ceremonies are swept"
    clock.advance(30 * 60)
    _sweep_once(app)
    assert count(app, Session) == 0, "idle anonymous sessions are swept"


# --- security.md §38: no link to another site ----------------------------------------------------


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action", "formaction") and value is not None:
                self.urls.append(value)


def assert_every_link_stays_on_the_site(r):
    page = str(r.url)
    parser = _Links()
    parser.feed(r.text)
    assert parser.urls, "the page has links to check"
    site = urlsplit(page)
    for url in parser.urls:
        # What a browser does before it resolves a link: tabs and newlines go, `\` is `/`.
        seen = url.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
        target = urlsplit(urljoin(page, seen))
        assert (target.scheme, target.netloc) == (site.scheme, site.netloc), (url, page)
        assert url.startswith(("/", "#")) and not url.startswith("//"), url


HOSTILE_PATHS = ["//evil.example/x", "///evil.example/x", "//evil.example/x?lang=en", "/\\evil.example/x",
                 "/%5Cevil.example/x", "/%09/evil.example/x", "/%0a/evil.example", "//evil.example"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database work here
@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_case38_the_404_page_links_only_to_this_site(client, path):
    r = client.get("http://testserver" + path)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert_every_link_stays_on_the_site(r)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("query", ["", "?lang=en", "?next=//evil.example/x", "?next=/%5Cevil.example&lang=en"])
def test_case38_the_login_page_links_only_to_this_site(client, query):
    r = client.get("/login" + query)
    assert r.status_code == 200
    assert_every_link_stays_on_the_site(r)


def test_case38_customer_pages_link_only_to_this_site(client, customer, mailsink):
    login(client, mailsink)
    for path in ("/account", "/account/passkeys", "/account/activity?lang=en"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert_every_link_stays_on_the_site(r)


# --- security.md §26: text that is not Unicode is malformed JSON, never a 500 -------------------

LONE = "a\udfffb"  # legal JSON ("a\udfffb" as an escape), not encodable as UTF-8


def raw_json(obj) -> bytes:
    # json.dumps writes a lone surrogate as its \u escape (ensure_ascii), as an attacker would send it.
    return json.dumps(obj).encode()


def assert_malformed(r):
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["message"]


def post(c, path, obj, method="POST"):
    return c.request(method, path, content=raw_json(obj), headers={"Content-Type": "application/json"})


def _stored(app) -> tuple:
    """Everything a request could have written or changed."""
    users = tuple((u.email, u.failed_logins, u.locked_at) for u in sorted(rows(app, User), key=lambda u: u.id))
    names = tuple(sorted(c.name for c in rows(app, Credential)))
    return (count(app, Session), count(app, Ceremony), count(app, OneTimeCode), count(app, SecurityEvent),
            users, names)


def _assertion(key: SoftKey, c) -> dict:
    opts = c.post("/api/login/passkey/options", json={}).json()["publicKey"]
    return key.get(b64url_decode(opts["challenge"]))


def test_case26_a_lone_surrogate_in_any_field_is_400_and_stores_nothing(make_app, mailsink):
    app = make_app()
    add_customer(app)
    key = SoftKey(ES256)
    register_passkey(app, mailsink, key)
    passkey_id = b64url(rows(app, Credential)[0].credential_id)

    with client_from(app, "198.51.100.210") as anon, client_from(app, "198.51.100.211") as logged:
        login(logged, mailsink)
        good_assertion = _assertion(key, anon)
        reg = logged.post("/api/passkeys/register/options", json={}).json()["publicKey"]
        registration = SoftKey(ES256).create(b64url_decode(reg["challenge"]),
                                             user_handle=b64url_decode(reg["user"]["id"]))
        cases = [
            (anon, "POST", "/api/login/password", {"customer_code": "TARO1234", "password": LONE}),
            (anon, "POST", "/api/login/password", {"customer_code": LONE, "password": PASSWORD}),
            (anon, "POST", "/api/login/password", {"customer_code": "TARO1234", "password": PASSWORD, "next": LONE}),
            (anon, "POST", "/api/login/password", {"customer_code": "TARO1234", "password": PASSWORD, LONE: 1}),
            (anon, "POST", "/api/login/code", {"code": LONE}),
            (anon, "POST", "/api/login/code/resend", {"x": [LONE]}),
            (anon, "POST", "/api/login/passkey/options", {"next": LONE}),
            (anon, "POST", "/api/login/passkey/verify", {**good_assertion, "id": LONE}),
            (anon, "POST", "/api/login/passkey/verify", {**good_assertion, "type": LONE}),
            (anon, "POST", "/api/login/passkey/verify",
             {**good_assertion, "response": {**good_assertion["response"], "clientDataJSON": LONE}}),
            (anon, "POST", "/api/login/passkey/verify",
             {**good_assertion, "clientExtensionResults": {"deep": [{"er": LONE}]}}),
            (anon, "POST", "/api/logout", {"k": LONE}),
            (logged, "POST", "/api/step-up/code", {"code": LONE}),
            (logged, "POST", "/api/step-up/passkey/verify", {**good_assertion, "rawId": LONE}),
            (logged, "PATCH", f"/api/passkeys/{passkey_id}", {"name": LONE}),
            (logged, "PATCH", f"/api/passkeys/{passkey_id}", {"name": "ok", LONE: LONE}),
            (logged, "POST", "/api/passkeys/register/verify", {"credential": registration, "name": LONE}),
            (logged, "POST", "/api/passkeys/register/verify",
             {"credential": {**registration, "response": {**registration["response"], "transports": [LONE]}}}),
            (logged, "POST", "/api/account/email", {"email": f"{LONE}@example.com"}),
            (logged, "POST", "/api/authorize", {"operation": LONE}),
            (logged, "DELETE", f"/api/passkeys/{passkey_id}", {"why": LONE}),
        ]
        before = _stored(app)
        for c, method, path, obj in cases:
            r = post(c, path, obj, method=method)
            assert_malformed(r)
        # The same string as raw bytes (UTF-8's form of a surrogate), which json.loads also lets through.
        r = logged.patch(f"/api/passkeys/{passkey_id}", content=b'{"name": "a\xed\xbf\xbfb"}',
                         headers={"Content-Type": "application/json"})
        assert_malformed(r)
        assert _stored(app) == before, "nothing stored, changed or counted"
        # And none of that spent the real things: the logged-in session, the passkey, the password.
        assert logged.get("/api/session").status_code == 200
        assert len(rows(app, Credential)) == 1
    with client_from(app, "198.51.100.212") as c:
        assert attempt(c, pw=PASSWORD).json()["status"] == "code_sent"


def test_case26_a_paired_surrogate_is_ordinary_text(client, customer, mailsink):
    """😀 written as its JSON surrogate pair is one character: accepted like any other."""
    login(client, mailsink)
    key = SoftKey(ES256)
    opts = client.post("/api/passkeys/register/options", json={}).json()["publicKey"]
    credential = key.create(b64url_decode(opts["challenge"]), user_handle=b64url_decode(opts["user"]["id"]))
    r = client.post("/api/passkeys/register/verify", content=b'{"credential": ' + json.dumps(credential).encode()
                    + b', "name": "Key \\ud83d\\ude00"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["passkey"]["name"] == "Key \U0001F600"


@pytest.mark.parametrize("value", ["\x00", "a\x00b"])
def test_case26_nul_in_a_json_string_gets_the_usual_answer_never_500(client, customer, mailsink, value):
    """NUL is Unicode (so not malformed JSON), but PostgreSQL cannot store it: an e-mail address
    holding one was a 500 there; it is no address (422). Elsewhere it gets the field's usual answer."""
    app = client.app
    assert post(client, "/api/login/password", {"customer_code": value, "password": PASSWORD}).status_code == 401
    assert post(client, "/api/login/password", {"customer_code": "TARO1234", "password": value}).status_code == 401
    login(client, mailsink)
    before = _stored(app)
    for email in (f"new{value}@example.com", f"{value}@example.com", f"new@example.com{value}"):
        r = post(client, "/api/account/email", {"email": email})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
    assert _stored(app) == before
    r = post(client, "/api/authorize", {"operation": "trade", "ignored": {value: [value]}})
    assert r.status_code < 500, r.text


def test_case26_odd_query_parameters_and_headers_never_500(client, customer, mailsink):
    odd_ua = [("User-Agent", b"\xff\xfe\x80 a\x00g\x1fent\x7f"), ("Accept-Language", b"\xff;q=\xfe, en\x00")]
    r = client.post("/api/login/password", json={"customer_code": "TARO1234", "password": "wrong"}, headers=odd_ua)
    assert r.status_code == 401, r.text
    assert client.post("/api/login/passkey/options", json={}, headers=odd_ua).status_code == 200
    r = client.post("/api/login/password", json={"customer_code": "TARO1234", "password": PASSWORD}, headers=odd_ua)
    assert r.status_code == 200, r.text
    r = client.post("/api/login/code", json={"code": mailsink.last_code("taro@example.com")}, headers=odd_ua)
    assert r.status_code == 200, r.text
    stored = {s.user_agent for s in rows(client.app, Session)} | {e.user_agent for e in rows(client.app, SecurityEvent)}
    assert any(ua and ua.endswith(" agent") for ua in stored), stored  # kept, less its control characters
    assert not any(re.search(r"[\x00-\x1f\x7f]", ua or "") for ua in stored), stored
    for query in ("operation=%ED%B3%BF", "operation=a%00b", "operation=%FF", "operation=trade%00"):
        r = client.get(f"/auth/check?{query}", headers=odd_ua)  # not one of the operations: 422
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", (query, r.text)
    for query in ("lang=%ED%B3%BF", "lang=%00", "operation=&lang=%FF"):
        r = client.get(f"/auth/check?{query}", headers=odd_ua)
        assert r.status_code < 500, (query, r.text)
    for path in ("/login?next=%ED%B3%BF", "/login?next=%00//evil", "/login?lang=%ED%B3%BF&next=/\\x",
                 "/account?lang=%00", "/nowhere%ED%B3%BF?lang=%FF"):
        r = client.get(path, headers=odd_ua)
        assert r.status_code < 500, (path, r.status_code)
    assert client.post("/api/logout", headers=odd_ua).status_code == 204


@pytest.mark.parametrize("raw,expected", [(None, (60, 60)), ("10/minute", (10, 60)), ("100/5minutes", (100, 300)),
                                          ("0", None)])
def test_case37_the_options_limit_is_a_setting(tmp_path, raw, expected):
    from server.config import load_settings

    env = {"TOBIRA_DATA_DIR": str(tmp_path)} | ({"TOBIRA_LOGIN_OPTIONS_LIMIT": raw} if raw else {})
    assert load_settings(env, dotenv=None).login_options_limit == expected


@pytest.mark.parametrize("raw", ["sixty", "60", "0/minute", "60/fortnight"])
def test_case37_a_malformed_options_limit_stops_the_server(tmp_path, raw):
    from server.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="TOBIRA_LOGIN_OPTIONS_LIMIT"):
        load_settings({"TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_LOGIN_OPTIONS_LIMIT": raw}, dotenv=None)


def test_case37_off_means_unlimited(make_app):
    app = make_app(login_options_limit=None)
    assert all(options_without_cookie(app, "203.0.113.90").status_code == 200 for _ in range(70))
