"""WebAuthn L3 hints as Chromium receives them from the pages (issue 14, point 2): the login page
asks for this device, then a phone; the passkeys page's first button for this device, its second
("セキュリティキーを追加") for a roaming security key."""

from __future__ import annotations

import re

from playwright.sync_api import Page

from .support import log_in_with_code

# Records the hints (and attachment) of every navigator.credentials call, through an exposed
# function, as the browser receives them (after the page's JSON parsing).
HINTS_SPY = """
(() => {
  if (!navigator.credentials) return;
  const report = (entry) => window.__tobiraHints && window.__tobiraHints(entry);
  for (const name of ["get", "create"]) {
    const real = navigator.credentials[name].bind(navigator.credentials);
    navigator.credentials[name] = function (options) {
      const pk = (options && options.publicKey) || {};
      report({call: name, mediation: options.mediation || "modal", hints: pk.hints || null,
              attachment: (pk.authenticatorSelection || {}).authenticatorAttachment || null});
      return real(options);
    };
  }
  // This test is about hints, not the automatic upgrade after the code login.
  if (window.PublicKeyCredential) PublicKeyCredential.getClientCapabilities = async () => ({});
})();
"""


def until(page: Page, found) -> None:
    """Wait (up to 5 s) until `found()`: the spy reports asynchronously."""
    for _ in range(100):
        if found():
            return
        page.wait_for_timeout(50)
    assert found()


def test_each_page_asks_for_the_right_authenticator(page: Page, server, mailsink):
    seen: list[dict] = []
    page.expose_function("__tobiraHints", lambda entry: seen.append(entry))
    page.add_init_script(HINTS_SPY)
    page.goto(server.url + "/login")  # its autofill request is made as the page loads
    until(page, lambda: {"call": "get", "mediation": "conditional", "hints": ["client-device", "hybrid"],
                         "attachment": None} in seen)

    log_in_with_code(page, server, mailsink)
    page.goto(server.url + "/account/passkeys")
    seen.clear()
    page.locator("#passkey-add").click()
    until(page, lambda: {"call": "create", "mediation": "modal", "hints": ["client-device"], "attachment": None} in seen)
    page.reload()  # (that request waits for an authenticator that is not there)
    page.locator("#passkey-add-key").click()
    until(page, lambda: {"call": "create", "mediation": "modal", "hints": ["security-key"],
                         "attachment": "cross-platform"} in seen)
    assert re.search(r"/account/passkeys$", page.url)
