"""The automatic passkey upgrade in Chromium (issue 14, point 1): after a password + code login,
/login/code asks for a conditional create where getClientCapabilities() reports conditionalCreate,
and nothing where it does not.

What Chromium does here: it reports conditionalCreate, and without a password manager that has just
filled the password it declines at once (NotAllowedError), as it does for a customer who typed the
password. Its virtual authenticators never answer a conditional create (that is Google Password
Manager's job), so the test of the moment a passkey *is* made hands the page's conditional request
to the virtual authenticator as an ordinary create. The server's side of a create without user
presence, which only a real password manager sends, is tested through the API (tests/test_upgrade.py).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest
from mailsink import body
from playwright.sync_api import Page, expect

from .support import CHROMIUM, CHROMIUM_ARGS, EMAIL, PHONE, PLATFORM, Authenticators, type_password_and_code

# Records each navigator.credentials.create call's mediation and how it settled, through an
# exposed function (the record survives the navigation that follows a login).
CREATE_SPY = """
(() => {
  if (!navigator.credentials || !window.PublicKeyCredential) return;
  const report = (entry) => window.__tobiraReport && window.__tobiraReport(entry);
  const create = navigator.credentials.create.bind(navigator.credentials);
  navigator.credentials.create = function (options) {
    const mediation = (options && options.mediation) || "modal";
    const promise = create(options);
    promise.then(() => report({mediation, state: "resolved"}),
                 (e) => report({mediation, state: "rejected", error: e && e.name}));
    return promise;
  };
})();
"""

# Chromium's virtual authenticators do not answer a conditional create: hand it on as an ordinary
# one (the page still asked for "conditional"; CREATE_SPY, installed after this, records that).
CONDITIONAL_TO_VIRTUAL = """
(() => {
  if (!navigator.credentials) return;
  const create = navigator.credentials.create.bind(navigator.credentials);
  navigator.credentials.create = function (options) {
    if (options && options.mediation === "conditional") {
      const { mediation, ...modal } = options;
      return create(modal);
    }
    return create(options);
  };
})();
"""

NO_CONDITIONAL_CREATE = """
(() => {
  if (!window.PublicKeyCredential) return;
  PublicKeyCredential.getClientCapabilities = async () => ({ conditionalCreate: false, conditionalGet: true });
})();
"""

NO_CAPABILITIES = "(() => { if (window.PublicKeyCredential) delete PublicKeyCredential.getClientCapabilities; })();"


def watch(page: Page) -> tuple[list[dict], list[dict]]:
    """(create calls, bodies of registration-options requests) as the page makes them."""
    creates: list[dict] = []
    asked: list[dict] = []
    page.expose_function("__tobiraReport", lambda entry: creates.append(entry))
    page.on("request", lambda r: asked.append(json.loads(r.post_data or "{}"))
            if r.url.endswith("/api/passkeys/register/options") else None)
    return creates, asked


def passkeys(page: Page, server) -> list[dict]:
    return page.request.get(server.url + "/api/passkeys").json()["passkeys"]


def test_where_the_browser_can_the_page_asks_and_goes_on_when_it_declines(page: Page, server, mailsink):
    page.add_init_script(CREATE_SPY)
    creates, asked = watch(page)
    type_password_and_code(page, server, mailsink)
    page.wait_for_url(re.compile(r"/account$"))
    assert asked == [{"mediation": "conditional"}]
    assert creates == [{"mediation": "conditional", "state": "rejected", "error": "NotAllowedError"}]
    expect(page.locator("#passkey-invite")).to_be_visible()  # no passkey was made
    assert passkeys(page, server) == []


def test_where_the_browser_cannot_nothing_is_asked(browser, server, mailsink):
    for script in (NO_CONDITIONAL_CREATE, NO_CAPABILITIES):
        context = browser.new_context(locale="ja-JP")
        page = context.new_page()
        page.add_init_script(script)
        page.add_init_script(CREATE_SPY)
        creates, asked = watch(page)
        type_password_and_code(page, server, mailsink)
        page.wait_for_url(re.compile(r"/account$"))
        assert asked == [] and creates == []
        context.close()


def test_the_upgrade_moment(browser, page: Page, server, mailsink, authenticators, screenshots):
    authenticators.plug("platform", PLATFORM, defaultBackupEligibility=True, defaultBackupState=True)
    page.add_init_script(CONDITIONAL_TO_VIRTUAL)
    page.add_init_script(CREATE_SPY)
    creates, asked = watch(page)
    type_password_and_code(page, server, mailsink)

    panel = page.locator("#passkey-upgraded")
    expect(panel).to_be_visible()
    expect(page.locator("#code-card")).to_be_hidden()
    expect(page.locator("#passkey-upgraded-continue")).to_be_focused()
    assert asked == [{"mediation": "conditional"}]
    assert creates == [{"mediation": "conditional", "state": "resolved"}]
    [made] = passkeys(page, server)
    expect(page.locator("#passkey-upgraded-name")).to_have_text(made["name"])
    assert made["hold_until"] is not None  # made from a code session: on hold
    page.screenshot(path=str(screenshots / "upgrade-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(screenshots / "upgrade-phone.png"), full_page=True)

    page.keyboard.press("Enter")  # the continue button has the focus
    page.wait_for_url(re.compile(r"/account$"))
    mail = mailsink.wait_for(lambda m: m["To"] == EMAIL and "パスキーを登録しました" in str(m["Subject"]))
    assert made["name"] in body(mail)
    assert len(authenticators.credentials()) == 1

    # The new passkey logs in (with UV, as every passkey login asks): /login's autofill request,
    # answered by the authenticator.
    assert page.request.post(server.url + "/api/logout", headers={"Origin": server.url}).status == 204
    page.goto(server.url + "/login")
    page.wait_for_url(re.compile(r"/account$"))
    assert page.request.get(server.url + "/api/session").json()["auth_method"] == "passkey"


# --- the broker's other site (TOBIRA_RELATED_ORIGINS) -----------------------------------------
#
# A real Related Origin Request: the FX site is https://fx-broker.test (Chromium maps the name to this
# machine), a wholly other domain than the RP ID "localhost". nginx on 127.0.0.1:443, with a
# self-signed certificate Chromium is told to accept, proxies that site to Tobira and answers
# https://localhost/.well-known/webauthn from Tobira too (which serves it from TOBIRA_RELATED_ORIGINS).
# Chromium fetches that file and lets the FX site use localhost's passkeys only if its origin is
# listed. Port 443 needs root, which CI has.

RELATED_HOST = "fx-broker.test"
RELATED = f"https://{RELATED_HOST}"
TLS_PROXY = """
daemon off; pid {dir}/nginx.pid; error_log {dir}/nginx.err;
events {{}}
http {{
  access_log off; client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  ssl_certificate {dir}/cert.pem; ssl_certificate_key {dir}/key.pem;
  server {{
    listen 127.0.0.1:443 ssl; server_name localhost;
    location = /.well-known/webauthn {{ proxy_pass http://127.0.0.1:{port}; }}
    location / {{ return 404; }}
  }}
  server {{
    listen 127.0.0.1:443 ssl; server_name {related};
    location / {{ proxy_pass http://127.0.0.1:{port}; proxy_set_header Host $host; }}
  }}
}}
"""
BROWSER_ARGS = [*CHROMIUM_ARGS, "--ignore-certificate-errors", f"--host-resolver-rules=MAP {RELATED_HOST} 127.0.0.1"]


@pytest.fixture
def rp_id_over_https(tmp_path, server):
    """nginx on 127.0.0.1:443: https://localhost/.well-known/webauthn and https://fx-broker.test, both
    from the running Tobira."""
    port = server.url.rsplit(":", 1)[1]
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", f"subjectAltName=DNS:localhost,DNS:{RELATED_HOST}", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(TLS_PROXY.format(dir=tmp_path, port=port, related=RELATED_HOST))
    nginx = subprocess.Popen(["nginx", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", 443), timeout=1):
                    break
            except OSError:
                if nginx.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("nginx did not listen on 127.0.0.1:443: "
                                         + (tmp_path / "nginx.err").read_text(errors="replace")) from None
                time.sleep(0.1)
        yield
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


@pytest.fixture
def mapped_browser(browser):
    """A browser of its own (its flags map the FX site's name and accept the test certificate),
    launched by the session's Playwright."""
    mapped = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
    yield mapped
    mapped.close()


@pytest.mark.server_env(TOBIRA_RELATED_ORIGINS=RELATED)
def test_a_passkey_made_on_the_main_site_logs_in_on_the_related_site(mapped_browser, server, mailsink,
                                                                    rp_id_over_https, screenshots):
    page = mapped_browser.new_context(locale="ja-JP").new_page()
    bench = Authenticators(page)
    bench.plug("platform", PLATFORM, defaultBackupEligibility=True, defaultBackupState=True)
    page.add_init_script(NO_CONDITIONAL_CREATE)  # this test is not about the upgrade
    type_password_and_code(page, server, mailsink)
    page.wait_for_url(re.compile(r"/account$"))
    page.locator("#passkey-create").click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))

    page.goto(RELATED + "/login")  # its autofill request, answered by the authenticator
    page.wait_for_url(re.compile(r"/account$"))
    assert page.url == RELATED + "/account"
    # (from the page: Playwright's own requests do not use Chromium's host mapping)
    assert page.evaluate("async () => (await (await fetch('/api/session')).json()).auth_method") == "passkey"
    page.screenshot(path=str(screenshots / "related-origin-account.png"), full_page=True)
    bench.close()


@pytest.mark.server_env(TOBIRA_RELATED_ORIGINS="https://another-site.example")
def test_a_site_not_listed_cannot_use_the_passkeys(mapped_browser, server, mailsink, rp_id_over_https):
    """The same site, absent from /.well-known/webauthn: Chromium refuses before Tobira is asked."""
    page = mapped_browser.new_context(locale="ja-JP").new_page()
    bench = Authenticators(page)
    bench.plug("platform", PLATFORM, presence=False)
    page.goto(RELATED + "/login")
    outcome = page.evaluate("""async () => {
      // Tobira answers no ceremony to a page of that origin ...
      const asked = await fetch("/api/login/passkey/options", {method: "POST",
        headers: {"Content-Type": "application/json"}, body: "{}"});
      const refused = (await asked.json()).error.code;
      // ... and the browser, having read /.well-known/webauthn, lets it use no passkey of the RP.
      try {
        await navigator.credentials.get({publicKey: {rpId: "localhost", challenge: new Uint8Array(32),
                                                     userVerification: "required"}});
        return [refused, "allowed"];
      } catch (e) { return [refused, e.name]; }
    }""")
    assert outcome == ["csrf_rejected", "SecurityError"]
    bench.close()
