"""The README's "A Starlette app" example (section "Connecting an app"), run as printed against a
live Tobira: only the issuer's address and the client's credentials are put in."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from starlette.testclient import TestClient

from softkey import SoftKey
from conftest import add_customer
from oidckit import add_passkey, code_login, passkey_login

README = Path(__file__).resolve().parents[1] / "README.md"
CALLBACK = "https://stock.broker.example/oidc/callback"


def example_app(issuer: str, client_id: str, secret: str):
    text = README.read_text()
    section = text[text.index("**A Starlette app**"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = (code.replace("https://login.broker.example", issuer).replace('"3l1..."', repr(client_id))
            .replace('"Qx9..."', repr(secret)).replace('secret_key="..."', 'secret_key="test-session-secret"'))
    namespace: dict = {}
    exec(compile(code, "README.md (A Starlette app)", "exec"), namespace)
    return namespace["app"]


def to_tobira(app_client: TestClient, browser):
    """The app's /login, then the browser at Tobira's authorization endpoint: Tobira's answer."""
    r = app_client.get("/login", follow_redirects=False)
    assert r.status_code in (302, 303, 307), r.text
    return browser.get(r.headers["location"])


def test_the_readme_starlette_example_signs_in_only_with_a_passkey(live, mailsink, clock):
    clock.now = datetime.now(timezone.utc)  # the example's Authlib checks tokens against the real time
    server = live(new_passkey_hold=0)
    add_customer(server.app)
    client_id, secret = server.add_client(redirect=CALLBACK)
    app = example_app(server.origin, client_id, secret)
    browser, key = server.browser(), SoftKey(synced=False, origin=server.origin)
    code_login(browser, mailsink)
    with TestClient(app, base_url="https://stock.broker.example") as app_client:
        # The example asks for acr_values=phr: a code login is not enough, Tobira asks for a passkey.
        tobira = to_tobira(app_client, browser)
        assert tobira.status_code == 303 and tobira.headers["location"].startswith("/login?next=")
        add_passkey(browser, key)
        browser.cookies.clear()
        passkey_login(browser, key)
        tobira = to_tobira(app_client, browser)
        assert tobira.status_code == 303 and tobira.headers["location"].startswith(CALLBACK + "?code=")
        callback = app_client.get(tobira.headers["location"][len("https://stock.broker.example"):],
                                  follow_redirects=False)
        assert callback.status_code == 307 and callback.headers["location"] == "/", callback.text  # signed in
