"""Single sign-on, end to end, with a relying party nobody here wrote: openid-client (Node, the
certified OpenID Connect library; e2e/oidc-rp/rp.mjs) signs a customer in through a live
`tobira serve`, the customer proving who they are with a passkey on a virtual authenticator in
Chromium. openid-client checks discovery, `iss` in the authorization response (RFC 9207), state,
nonce, PKCE and the ID token against the JWKS; the RP then calls userinfo, refreshes, and receives
the back-channel logout token when the customer logs out of Tobira."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from mailsink import free_port

from .conftest import _cli
from .support import CUSTOMER_CODE, PLATFORM, log_in_with_code

RP = Path(__file__).resolve().parent / "oidc-rp"
NODE = shutil.which("node")


@pytest.fixture
def relying_party(server, tmp_path):
    """The stock site: registered with `tobira client add`, running rp.mjs; its base URL."""
    if NODE is None or not (RP / "node_modules" / "openid-client").exists():
        pytest.fail("node and e2e/oidc-rp/node_modules are needed: the README's test command installs them")
    port = free_port()
    base = f"http://localhost:{port}"
    out = _cli(server.env, tmp_path, "client", "add", "Stock site", "--redirect-uri", f"{base}/cb",
               "--backchannel-logout-uri", f"http://127.0.0.1:{port}/backchannel")
    client_id = re.search(r"^client_id: (\S+)$", out, re.M).group(1)
    secret = re.search(r"^client_secret: (\S+)$", out, re.M).group(1)
    env = {**os.environ, "ISSUER": server.url, "CLIENT_ID": client_id, "CLIENT_SECRET": secret, "PORT": str(port)}
    log = tmp_path / "rp.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([NODE, "rp.mjs"], cwd=RP, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "rp listening" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the relying party did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def rp_state(base: str) -> dict:
    return httpx.get(base + "/state", timeout=10).json()


@pytest.mark.server_env(TOBIRA_NEW_PASSKEY_HOLD=0)
def test_openid_client_signs_in_with_a_passkey_refreshes_and_hears_the_logout(
        page: Page, server, mailsink, authenticators, relying_party, screenshots):
    # The customer has a passkey (made after a code login) and is logged out of Tobira.
    authenticators.plug("platform", PLATFORM)
    log_in_with_code(page, server, mailsink)
    page.locator("#passkey-create").click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))
    page.goto(server.url + "/account")
    # Presence off before any /login loads: with it on, the page's autofill request is answered at
    # once and logs the customer in by itself (support.Authenticators); the button is pressed below.
    authenticators.set_presence(False)
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login$"))

    # The stock site sends the browser to Tobira, which asks for a login first.
    page.goto(relying_party + "/login?acr=phr")
    page.wait_for_url(re.compile(r"/login\?next="))
    expect(page.locator("#login-for-app")).to_contain_text("「Stock site」")
    expect(page.locator("#login-for-app")).to_contain_text("パスキーでのログインが必要です")
    page.screenshot(path=str(screenshots / "oidc-login-for-an-app-desktop.png"), full_page=True)
    authenticators.set_presence(True)
    page.locator("#passkey-login").click()
    page.wait_for_url(re.compile(re.escape(relying_party) + r"/cb\?"))
    result = json.loads(page.locator("#result").text_content())
    claims, userinfo = result["claims"], result["userinfo"]
    assert claims["iss"] == server.url and claims["amr"] == ["hwk", "user", "mfa"] and claims["acr"] == "phrh"
    assert claims["customer_code"] == CUSTOMER_CODE and claims["sub"] != CUSTOMER_CODE
    assert userinfo["sub"] == claims["sub"] and userinfo["name"] == "山田 太郎"
    assert result["has_refresh_token"] is True
    assert rp_state(relying_party)["errors"] == []

    # A second app visit needs no login: the Tobira session answers at once.
    page.goto(relying_party + "/login")
    page.wait_for_url(re.compile(re.escape(relying_party) + r"/cb\?"))

    # Refresh (rotated), through openid-client.
    refreshed = httpx.get(relying_party + "/refresh", timeout=10).json()
    assert refreshed["rotated"] is True and refreshed["claims"]["sub"] == claims["sub"]

    # The customer logs out of Tobira: the stock site hears it (a logout token openid-client's
    # jose checked against Tobira's JWKS), for that session.
    page.goto(server.url + "/account")
    page.locator("#logout").click()
    deadline = time.monotonic() + 15
    while not rp_state(relying_party)["logouts"]:
        assert time.monotonic() < deadline, rp_state(relying_party)
        page.wait_for_timeout(100)
    logout = rp_state(relying_party)["logouts"][0]["payload"]
    assert logout["sub"] == claims["sub"] and logout["sid"] == claims["sid"]
    r = httpx.get(relying_party + "/refresh", timeout=10)
    assert r.status_code == 400 and r.json()["oauth_error"] == "invalid_grant"  # it died with the session


def test_a_bad_authorization_request_shows_an_error_page(page: Page, server, screenshots):
    page.goto(server.url + "/oauth/authorize?client_id=unknown&redirect_uri=https://evil.example/cb"
              "&response_type=code&scope=openid")
    expect(page.locator("#oauth-error")).to_have_attribute("data-error", "invalid_client")
    assert page.url.startswith(server.url)  # never sent anywhere else
    page.screenshot(path=str(screenshots / "oidc-error-page-desktop.png"), full_page=True)
