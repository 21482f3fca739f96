"""Logout everywhere (contract: "OpenID Connect"): RP-initiated logout, and the back-channel logout
token every app that got tokens in a session receives when that session ends, however it ends."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import httpx2
import pytest
from joserfc import jwk, jwt

from server import accounts, store, store_oidc
from conftest import add_customer
from oidckit import REDIRECT, Receiver, authorize, code_login, exchange, id_claims

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
AFTER_LOGOUT = "https://stock.example.com/bye"


@pytest.fixture
def receiver():
    one = Receiver()
    yield one
    one.close()


@pytest.fixture
def signed_in(live, mailsink, receiver):
    """A customer logged in to Tobira and, through it, to an app with a back-channel logout URI."""
    server = live()
    add_customer(server.app)
    server.ctx.logouts.idle_seconds = 0.2  # poll often: the CLI's logouts are queued in another process
    client_id, secret = server.add_client(post_logout_redirect_uris=[AFTER_LOGOUT],
                                          backchannel_logout_uri=receiver.uri, scopes="openid offline_access")
    browser = server.browser()
    code_login(browser, mailsink)
    rp = server.rp(client_id, secret, scope="openid offline_access")
    r, verifier, nonce = authorize(server, browser, rp)
    token = exchange(server, rp, r.headers["location"], verifier)
    claims = id_claims(server, token, nonce, client_id)
    return server, browser, rp, token, claims, client_id, secret


def check_logout_token(server, token: str, *, client_id: str, claims: dict) -> dict:
    keys = jwk.KeySet.import_key_set(httpx2.get(server.url("/oauth/jwks")).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header["typ"] == "logout+jwt"
    body = decoded.claims
    assert body["iss"] == server.origin and body["aud"] == client_id
    assert body["sub"] == claims["sub"] and body["sid"] == claims["sid"]
    assert LOGOUT_EVENT in body["events"] and "nonce" not in body
    return body


def _refresh_refused(server, token, client_id, secret) -> bool:
    r = httpx2.post(server.url("/oauth/token"), data={"grant_type": "refresh_token",
                                                      "refresh_token": token["refresh_token"]}, auth=(client_id, secret))
    return r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_the_customers_own_logout_reaches_the_app(signed_in, receiver):
    server, browser, rp, token, claims, client_id, secret = signed_in
    assert browser.post("/api/logout").status_code == 204
    check_logout_token(server, receiver.wait(1)[0], client_id=client_id, claims=claims)
    assert _refresh_refused(server, token, client_id, secret)
    time.sleep(0.5)
    assert len(receiver.tokens) == 1  # once


@pytest.mark.parametrize("action", ["end_sessions", "reset_passkeys", "hold"])
def test_the_support_desks_actions_reach_the_app(signed_in, receiver, action):
    server, browser, rp, token, claims, client_id, secret = signed_in
    db, now = server.ctx.db, server.ctx.clock()
    if action == "end_sessions":
        db.run_sync(accounts.end_sessions, "TARO1234", now=now)
    elif action == "reset_passkeys":
        db.run_sync(accounts.reset_passkeys, "TARO1234", now=now, notify=lambda *a: None)
    else:
        db.run_sync(accounts.hold, "TARO1234", now=now, reason="suspected takeover")
    check_logout_token(server, receiver.wait(1)[0], client_id=client_id, claims=claims)
    assert _refresh_refused(server, token, client_id, secret)


def test_rp_initiated_logout_with_the_sessions_id_token_ends_it_at_once(signed_in, receiver):
    server, browser, rp, token, claims, client_id, secret = signed_in
    r = browser.get("/oauth/logout", params={"id_token_hint": token["id_token"], "state": "bye-1",
                                             "post_logout_redirect_uri": AFTER_LOGOUT})
    assert r.status_code == 303 and r.headers["location"] == AFTER_LOGOUT + "?state=bye-1"
    assert browser.get("/api/session").status_code == 401
    check_logout_token(server, receiver.wait(1)[0], client_id=client_id, claims=claims)


def test_a_logout_link_without_a_hint_asks_the_customer_first(signed_in, receiver):
    server, browser, rp, token, claims, client_id, secret = signed_in
    r = browser.get("/oauth/logout", params={"client_id": client_id, "post_logout_redirect_uri": AFTER_LOGOUT})
    assert r.status_code == 200 and 'id="logout-confirm"' in r.text
    assert browser.get("/api/session").status_code == 200  # nothing ended by a bare link
    # A forged form (another site's page, no confirmation of ours) ends nothing either.
    r = browser.post("/oauth/logout", data={"client_id": client_id, "confirm": "forged"})
    assert r.status_code == 200 and 'id="logout-confirm"' in r.text
    assert browser.get("/api/session").status_code == 200
    confirm = re.search(r'name="confirm" value="([^"]+)"', r.text).group(1)
    r = browser.post("/oauth/logout", data={"client_id": client_id, "post_logout_redirect_uri": AFTER_LOGOUT,
                                            "confirm": confirm})
    assert r.status_code == 200 and 'id="back-to-app"' in r.text and AFTER_LOGOUT in r.text
    assert browser.get("/api/session").status_code == 401
    receiver.wait(1)


@pytest.mark.parametrize("change", ["tampered", "expired", "unregistered redirect", "other client", "access token"])
def test_a_bad_logout_request_gets_an_error_page_and_ends_nothing(signed_in, clock, change):
    server, browser, rp, token, claims, client_id, secret = signed_in
    params = {"id_token_hint": token["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT}
    if change == "tampered":
        head, body, sig = token["id_token"].split(".")
        params["id_token_hint"] = f"{head}.{body[:-2]}AA.{sig}"
    elif change == "expired":
        clock.advance(301)
    elif change == "unregistered redirect":
        params["post_logout_redirect_uri"] = "https://evil.example/bye"
    elif change == "other client":
        other_id, _ = server.add_client()
        params["client_id"] = other_id
    else:
        params["id_token_hint"] = token["access_token"]
    r = browser.get("/oauth/logout", params=params)
    assert r.status_code == 400 and "location" not in r.headers and 'id="oauth-error"' in r.text
    if change != "expired":
        assert browser.get("/api/session").status_code == 200


def test_logout_of_one_session_leaves_the_customers_other_sessions_apps_alone(signed_in, receiver, mailsink):
    server, browser, rp, token, claims, client_id, secret = signed_in
    other_browser = server.browser()
    code_login(other_browser, mailsink)
    r, verifier, _ = authorize(server, other_browser, rp)
    other_token = exchange(server, rp, r.headers["location"], verifier)
    assert browser.post("/api/logout").status_code == 204
    assert len(receiver.wait(1)) == 1
    assert _refresh_refused(server, token, client_id, secret)
    assert "refresh_token" in rp.refresh_token(server.url("/oauth/token"), refresh_token=other_token["refresh_token"])


def test_a_failing_receiver_is_tried_again_and_given_up_in_the_end(live, mailsink, clock):
    failing = Receiver(status=500)
    try:
        server = live()
        add_customer(server.app)
        client_id, secret = server.add_client(backchannel_logout_uri=failing.uri)
        browser = server.browser()
        code_login(browser, mailsink)
        rp = server.rp(client_id, secret, scope="openid")
        r, verifier, _ = authorize(server, browser, rp)
        exchange(server, rp, r.headers["location"], verifier)
        browser.post("/api/logout")
        failing.wait(1)
        user = server.ctx.db.run_sync(store.user_by_code, "TARO1234")
        rows = server.ctx.db.run_sync(store_oidc.deliveries_of, user.id)
        assert len(rows) == 1 and rows[0].delivered_at is None
        deadline = time.monotonic() + 10
        while server.ctx.db.run_sync(store_oidc.deliveries_of, user.id)[0].attempts < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        failing.status = 200
        clock.advance(31)  # the first retry is due after 30 s
        server.ctx.logouts.wake()
        failing.wait(2)
        deadline = time.monotonic() + 10
        while server.ctx.db.run_sync(store_oidc.deliveries_of, user.id)[0].delivered_at is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        failing.close()


def test_an_app_without_a_back_channel_uri_still_loses_its_tokens(live, mailsink):
    server = live()
    add_customer(server.app)
    client_id, secret = server.add_client(scopes="openid offline_access")
    browser = server.browser()
    code_login(browser, mailsink)
    rp = server.rp(client_id, secret, scope="openid offline_access")
    r, verifier, _ = authorize(server, browser, rp)
    token = exchange(server, rp, r.headers["location"], verifier)
    browser.post("/api/logout")
    assert _refresh_refused(server, token, client_id, secret)
    assert urlsplit(r.headers["location"]).netloc == urlsplit(REDIRECT).netloc
