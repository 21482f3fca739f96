"""Passkeys in Chromium with CDP virtual authenticators: create, log in, rename, delete, limits.

Every test logs in the legacy way first (password + e-mailed code) unless it is about the login page
alone; that login counts as a fresh verification, so adding a passkey needs no step-up for
TOBIRA_STEP_UP_WINDOW seconds (600 by default). The step-up test runs its server with a 3-second
window and waits it out, so each sensitive action there deterministically asks for a step-up.

Authenticators are plugged in one at a time (support.Authenticators explains why): "platform" is a
built-in authenticator (transport internal), "key" a USB security key; a new passkey for the same
customer always needs an authenticator that does not hold one of theirs (excludeCredentials).
"""

from __future__ import annotations

import base64
import os
import re
import time

import httpx
import pytest
from mailsink import body
from playwright.sync_api import Page, expect

from .support import (CUSTOMER_CODE, EMAIL, NAME, PHONE, PLATFORM, SECURITY_KEY, b64url, code_mails,
                      log_in_with_code, new_code)

# Wording the tests check (Japanese, the default language).
ADDED = "パスキーを登録しました。"
RENAMED = "名前を変更しました。"
DELETED = "パスキーを削除しました。"
ALREADY_ON_THIS_AUTHENTICATOR = "この認証器には、すでにパスキーが登録されています。"
LIMIT_REACHED = "登録できるパスキーは{limit}個までです。追加するには、使っていないパスキーを削除してください。"
UNKNOWN_PASSKEY = ("このパスキーは登録されていません。別のパスキーを選ぶか、"
                   "お客様コードとパスワードでログインしてください。")
STEP_UP_CODE_SENT = "確認コードをメールで送信しました。"

SYNCED = {"defaultBackupEligibility": True, "defaultBackupState": True}  # looks like a synced passkey

# Records every navigator.credentials.get (its mediation and how it settled) and every
# PublicKeyCredential.signalUnknownCredential call, reporting them to Python through an exposed
# function, so the record survives the navigation a successful login causes.
WEBAUTHN_SPY = """
(() => {
  if (!navigator.credentials || !window.PublicKeyCredential) return;
  const report = (entry) => window.__tobiraReport && window.__tobiraReport(entry);
  const get = navigator.credentials.get.bind(navigator.credentials);
  let calls = 0;
  navigator.credentials.get = function (options) {
    const call = ++calls, mediation = (options && options.mediation) || "modal";
    report({call, mediation, state: "pending"});
    const promise = get(options);
    promise.then(() => report({call, mediation, state: "resolved"}),
                 (e) => report({call, mediation, state: "rejected", error: e && e.name}));
    return promise;
  };
  if (typeof PublicKeyCredential.signalUnknownCredential === "function") {
    const signal = PublicKeyCredential.signalUnknownCredential.bind(PublicKeyCredential);
    PublicKeyCredential.signalUnknownCredential = function (details) {
      report({signal: "signalUnknownCredential", details});
      return signal(details);
    };
  }
})();
"""


# --- helpers -----------------------------------------------------------------------------------




def eventually(page: Page, predicate, timeout: float = 10.0, message: str = "condition"):
    """Poll `predicate` until truthy. Waits with page.wait_for_timeout, never time.sleep: the sync
    API delivers browser events (exposed-function calls, framenavigated) only while Playwright runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(50)
    raise AssertionError(f"{message} not met within {timeout}s")


def watch_webauthn(page: Page) -> list[dict]:
    """Install WEBAUTHN_SPY on every document of `page`; returns the list it reports into."""
    reports: list[dict] = []
    page.expose_function("__tobiraReport", lambda entry: reports.append(entry))
    page.add_init_script(WEBAUTHN_SPY)
    return reports


def session_info(page: Page, server) -> dict:
    """GET /api/session with the browser's cookies."""
    response = page.request.get(server.url + "/api/session")
    assert response.status == 200, response.text()
    return response.json()


def rows(page: Page):
    return page.locator("[data-passkey-id]")


def status(page: Page, text: str):
    """The page's confirmations and explanations: a [role=status] in the page's section saying `text`."""
    return page.locator("#passkeys [role=status]").filter(has_text=text)


def alert(page: Page):
    return page.locator("#passkeys [role=alert]")


def add_passkey(page: Page, *, step_up=None):
    """Press #passkey-add on /account/passkeys with whatever authenticator is plugged in.

    `step_up`: a callable that answers the step-up dialog, when the test expects one.
    Returns the new row (the list is oldest first).
    """
    count = rows(page).count()
    page.locator("#passkey-add").click()
    if step_up is not None:
        step_up()
    # The page reloads after a success; on a failure the reason shows in the alert instead.
    expect(rows(page).nth(count).or_(page.locator("#passkeys [role=alert]:visible")).first).to_be_visible()
    assert not alert(page).is_visible(), f"adding a passkey failed: {alert(page).text_content()}"
    expect(rows(page)).to_have_count(count + 1)
    expect(status(page, ADDED)).to_be_visible()
    return rows(page).nth(count)


def step_up_with_email(page: Page, mailsink, *, screenshot=None) -> float:
    """Answer the open step-up dialog with an e-mailed code; returns when the verification happened."""
    dialog = page.locator("#step-up-dialog")
    expect(dialog).to_be_visible()
    seen = len(code_mails(mailsink))
    dialog.locator("[data-step-up=email]").click()
    expect(dialog.locator("[role=status]")).to_have_text(STEP_UP_CODE_SENT)
    dialog.locator("input[name=code]").fill(new_code(mailsink, seen))
    if screenshot:
        page.screenshot(path=str(screenshot), full_page=True)
    dialog.locator("[data-step-up=confirm]").click()
    expect(dialog).to_be_hidden()
    return time.monotonic()


def wait_until_stale(verified: float, window: float) -> None:
    """Sleep until a verification made before `verified` (monotonic) is older than `window`."""
    remaining = verified + window + 0.75 - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def open_login_with_pending_autofill(page: Page, server, authenticators, reports: list[dict]) -> dict:
    """Open /login so that its conditional (autofill) request stays pending; return its report.

    Chromium's virtual authenticators answer a conditional request at once when their presence is
    simulated, so the page is loaded with presence off and presence is switched on afterwards
    (for the modal request the test triggers next). Presence must already be off if the page is
    on its way to /login.
    """
    authenticators.set_presence(False)
    if not page.url.endswith("/login"):
        page.goto(server.url + "/login")
    field = page.locator("input[name=customer_code]")
    expect(field).to_have_attribute("autocomplete", "username webauthn")
    pending = eventually(page, lambda: next((r for r in reports if r.get("mediation") == "conditional"), None),
                         message="a conditional navigator.credentials.get on /login")
    authenticators.set_presence(True)
    return pending


# --- tests -------------------------------------------------------------------------------------


def test_create_from_account_then_log_in_with_a_passkey(page: Page, server, mailsink, authenticators, screenshots):
    reports = watch_webauthn(page)
    authenticators.plug("platform", PLATFORM)
    log_in_with_code(page, server, mailsink)

    # --- /account invites a customer without passkeys -----------------------------------------
    invite = page.locator("#passkey-invite")
    expect(invite).to_be_visible()
    expect(invite.locator("#passkey-create")).to_be_visible()
    expect(invite.locator("a[href='/account/passkeys']")).to_be_visible()
    page.screenshot(path=str(screenshots / "account-passkey-invite-desktop.png"), full_page=True)

    # --- one click: the ceremony with the platform authenticator, then the list ---------------
    page.locator("#passkey-create").click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))
    expect(rows(page)).to_have_count(1)
    first = rows(page).first
    expect(first.locator(".passkey-name")).to_have_text("パスキー")
    expect(first.locator(".badge")).to_have_text("この端末のみ")
    held = authenticators.credentials()
    assert len(held) == 1, held
    assert held[0]["isResidentCredential"] is True
    assert held[0]["rpId"] == "localhost"
    assert held[0]["userName"] == CUSTOMER_CODE
    assert held[0]["userDisplayName"] == NAME
    assert b64url(held[0]["credentialId"]) == first.get_attribute("data-passkey-id")
    mailsink.wait_for(lambda m: EMAIL in m["To"] and "パスキーを登録しました" in m["Subject"]
                      and "：「パスキー」" in body(m))

    page.goto(server.url + "/account")
    expect(page.locator("#passkey-invite")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("登録済みのパスキー：1個")

    # --- the same authenticator cannot make a second passkey (excludeCredentials) --------------
    page.goto(server.url + "/account/passkeys")
    page.locator("#passkey-add").click()
    expect(alert(page)).to_have_text(ALREADY_ON_THIS_AUTHENTICATOR)
    expect(rows(page)).to_have_count(1)
    assert len(authenticators.credentials()) == 1

    # --- a security key can ---------------------------------------------------------------------
    authenticators.plug("key", SECURITY_KEY)
    second = add_passkey(page)
    expect(second.locator(".passkey-name")).to_have_text("セキュリティキー")
    assert len(authenticators.credentials()) == 1
    assert len(authenticators.credentials("platform")) == 1
    key_id = b64url(authenticators.credentials()[0]["credentialId"])
    assert second.get_attribute("data-passkey-id") == key_id
    expect(second.locator("dd").last).to_have_text("未使用")

    # --- log out; log in with the security key, typing nothing -------------------------------
    # (With only a security key attached, Chromium's virtual environment offers no conditional
    # mediation, so /login starts no autofill request here; the button's request is the only one.)
    codes_before = len(code_mails(mailsink))
    page.goto(server.url + "/account")
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login$"))
    reports.clear()
    page.locator("#passkey-login").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    expect(page.locator(".facts")).to_contain_text("パスキー")
    info = session_info(page, server)
    assert info["auth_method"] == "passkey", info
    assert info["customer_code"] == CUSTOMER_CODE
    assert info["passkey_count"] == 2
    assert info["verified_at"] is not None
    assert len(code_mails(mailsink)) == codes_before  # no code was sent, none typed
    assert ("modal", "resolved") in [(r.get("mediation"), r.get("state")) for r in reports], reports

    # The security key answered: its row now has a last-used time, the other does not.
    page.goto(server.url + "/account/passkeys")
    used = page.locator(f"[data-passkey-id='{key_id}']")
    expect(used.locator("dd").last.locator("time")).to_have_count(1)
    expect(rows(page).first.locator("dd").last).to_have_text("未使用")

    # --- again with the platform passkey: the autofill request is pending; the button aborts it -
    page.goto(server.url + "/account")
    authenticators.plug("platform", restore=True, presence=False)  # see open_login_with_pending_autofill
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login$"))
    reports.clear()  # anything from an earlier document
    page.reload()
    conditional = open_login_with_pending_autofill(page, server, authenticators, reports)
    assert conditional["state"] == "pending", reports
    page.locator("#passkey-login").click()
    page.wait_for_url(re.compile(r"/account$"))
    assert session_info(page, server)["auth_method"] == "passkey"
    assert len(code_mails(mailsink)) == codes_before
    settled = [(r["mediation"], r["state"], r.get("error")) for r in reports if r.get("state") != "pending"]
    assert settled == [("conditional", "rejected", "AbortError"), ("modal", "resolved", None)], reports
    page.goto(server.url + "/account/passkeys")
    expect(rows(page).first.locator("dd").last.locator("time")).to_have_count(1)


def test_rename_and_delete_then_autofill_login(page: Page, server, mailsink, authenticators, screenshots):
    reports = watch_webauthn(page)
    log_in_with_code(page, server, mailsink)
    page.goto(server.url + "/account/passkeys")
    expect(page.locator(".empty")).to_have_text("まだパスキーがありません。")
    expect(rows(page)).to_have_count(0)

    authenticators.plug("platform", PLATFORM)
    add_passkey(page)
    authenticators.plug("key", SECURITY_KEY)
    add_passkey(page)
    expect(page.locator(".empty")).to_have_count(0)
    first, second = rows(page).nth(0), rows(page).nth(1)
    first_id, second_id = first.get_attribute("data-passkey-id"), second.get_attribute("data-passkey-id")

    # --- rename the first with Enter -----------------------------------------------------------
    name_input = first.locator("input[name=passkey_name]")
    expect(name_input).to_be_hidden()
    first.locator("[data-action=rename]").click()
    expect(name_input).to_be_visible()
    expect(name_input).to_be_focused()
    expect(name_input).to_have_value("パスキー")
    name_input.fill("  会社のPC  ")  # trimmed by the server
    name_input.press("Enter")
    expect(first.locator(".passkey-name")).to_have_text("会社のPC")
    expect(status(page, RENAMED)).to_be_visible()
    expect(name_input).to_be_hidden()

    # --- rename the second with the save button; a cancelled edit changes nothing first -------
    second.locator("[data-action=rename]").click()
    second.locator("input[name=passkey_name]").fill("捨てる名前")
    second.locator("[data-action=cancel]").click()
    expect(second.locator("input[name=passkey_name]")).to_be_hidden()
    expect(second.locator(".passkey-name")).to_have_text("セキュリティキー")

    second.locator("[data-action=rename]").click()
    expect(second.locator("input[name=passkey_name]")).to_have_value("セキュリティキー")
    second.locator("input[name=passkey_name]").fill("YubiKey 5C NFC")
    second.locator("[data-action=save]").click()
    expect(second.locator(".passkey-name")).to_have_text("YubiKey 5C NFC")
    expect(status(page, RENAMED)).to_be_visible()

    # --- a blank name is refused, the old one stays --------------------------------------------
    second.locator("[data-action=rename]").click()
    second.locator("input[name=passkey_name]").fill("   ")
    second.locator("[data-action=save]").click()
    expect(alert(page)).to_be_visible()
    expect(second.locator(".passkey-name")).to_have_text("YubiKey 5C NFC")
    second.locator("[data-action=cancel]").click()

    # --- the names are the server's: they survive a reload --------------------------------------
    page.reload()
    expect(page.locator(f"[data-passkey-id='{first_id}'] .passkey-name")).to_have_text("会社のPC")
    expect(page.locator(f"[data-passkey-id='{second_id}'] .passkey-name")).to_have_text("YubiKey 5C NFC")
    listed = page.request.get(server.url + "/api/passkeys").json()["passkeys"]
    assert [(p["id"], p["name"]) for p in listed] == [(first_id, "会社のPC"), (second_id, "YubiKey 5C NFC")]

    # --- delete: the dialog names the passkey; "cancel" keeps it ----------------------------------
    second = page.locator(f"[data-passkey-id='{second_id}']")
    dialog = page.locator("dialog#delete-dialog")
    expect(dialog).to_be_hidden()
    second.locator("[data-action=delete]").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("「YubiKey 5C NFC」を削除すると")
    page.screenshot(path=str(screenshots / "passkey-delete-dialog-desktop.png"), full_page=True)
    dialog.locator("[data-action=dismiss]").click()
    expect(dialog).to_be_hidden()
    expect(rows(page)).to_have_count(2)

    # --- confirm: gone (inside the step-up window, so no step-up dialog) ------------------------
    second.locator("[data-action=delete]").click()
    dialog.locator("[data-action=confirm]").click()
    expect(rows(page)).to_have_count(1)
    expect(status(page, DELETED)).to_be_visible()
    expect(page.locator("#step-up-dialog")).to_be_hidden()
    expect(page.locator(f"[data-passkey-id='{second_id}']")).to_have_count(0)
    mailsink.wait_for(lambda m: EMAIL in m["To"] and "パスキーを削除しました" in m["Subject"]
                      and "：「YubiKey 5C NFC」" in body(m))
    page.reload()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-passkey-id", first_id)

    # --- log out; the autofill logs in with the remaining (platform) passkey ---------------------
    # Chromium's virtual platform authenticator answers a conditional request by itself, as the
    # customer would pick the passkey from the autofill list on the customer-code field.
    page.goto(server.url + "/account")
    authenticators.plug("platform", restore=True)
    reports.clear()
    visited: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and visited.append(frame.url))
    page.locator("#logout").click()
    # /login, then /account without anything pressed on /login.
    eventually(page, lambda: any(u.endswith("/login") for u in visited) and visited[-1].endswith("/account"),
               message="logout to /login, then the autofill login to /account")
    page.wait_for_load_state()
    expect(page.locator(".facts")).to_contain_text("パスキー")
    assert ("conditional", "resolved") in [(r.get("mediation"), r.get("state")) for r in reports], reports
    assert session_info(page, server)["auth_method"] == "passkey"


def test_several_passkeys_up_to_the_limit(browser, page: Page, server, mailsink, authenticators, screenshots):
    log_in_with_code(page, server, mailsink)
    page.goto(server.url + "/account/passkeys")
    expect(page.locator("#passkeys")).to_contain_text("パスキーは最大5個まで登録できます。")

    # A mix: synced-looking platform passkeys, device-bound ones and security keys.
    authenticators.plug("phone", PLATFORM, **SYNCED)
    add_passkey(page)
    authenticators.plug("key", SECURITY_KEY)
    add_passkey(page)
    authenticators.plug("laptop", PLATFORM)
    laptop = add_passkey(page)
    laptop.locator("[data-action=rename]").click()
    laptop.locator("input[name=passkey_name]").fill("会社のWindowsノートPC（経理部・3階の窓際の席に置いてあるもの）")
    laptop.locator("input[name=passkey_name]").press("Enter")
    expect(status(page, RENAMED)).to_be_visible()

    expect(page.locator(".badge.synced")).to_have_count(1)
    expect(page.locator(".badge.device")).to_have_count(2)
    expect(page.locator(".badge.synced")).to_have_text("同期パスキー")
    listed = page.request.get(server.url + "/api/passkeys").json()
    assert listed["limit"] == 5
    assert [p["synced"] for p in listed["passkeys"]] == [True, False, False]
    assert [p["transports"] for p in listed["passkeys"]][1] == ["usb"]
    page.screenshot(path=str(screenshots / "passkeys-desktop.png"), full_page=True)

    # The same list on a phone: same cookies, phone viewport, nothing wider than the screen.
    phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                locale="ja-JP", storage_state=page.context.storage_state())
    try:
        phone_page = phone.new_page()
        phone_page.goto(server.url + "/account/passkeys")
        expect(phone_page.locator("[data-passkey-id]")).to_have_count(3)
        assert phone_page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone_page.screenshot(path=str(screenshots / "passkeys-phone.png"), full_page=True)
    finally:
        phone.close()

    # --- up to the limit of 5 -------------------------------------------------------------------
    authenticators.plug("tablet", PLATFORM, **SYNCED)
    add_passkey(page)
    authenticators.plug("spare-key", SECURITY_KEY)
    add_passkey(page)
    expect(rows(page)).to_have_count(5)
    add = page.locator("#passkey-add")
    expect(add).to_be_disabled()
    expect(status(page, LIMIT_REACHED.format(limit=5))).to_be_visible()
    page.screenshot(path=str(screenshots / "passkeys-limit-desktop.png"), full_page=True)
    page.reload()  # and on any later visit
    expect(add).to_be_disabled()
    expect(status(page, LIMIT_REACHED.format(limit=5))).to_be_visible()
    # The disabled button is described by that explanation.
    expect(page.locator("#" + add.get_attribute("aria-describedby"))).to_contain_text(LIMIT_REACHED.format(limit=5))

    # The server refuses a sixth ceremony too (a page left open elsewhere could still ask).
    refused = page.request.post(server.url + "/api/passkeys/register/options",
                                headers={"Origin": server.url}, data={})
    assert refused.status == 409, refused.text()
    assert refused.json()["error"]["code"] == "passkey_limit_reached"
    add.click(force=True)  # a disabled button does nothing
    expect(alert(page)).to_be_hidden()
    expect(rows(page)).to_have_count(5)

    # --- deleting one makes room again ---------------------------------------------------------
    rows(page).nth(1).locator("[data-action=delete]").click()
    page.locator("#delete-dialog [data-action=confirm]").click()
    expect(rows(page)).to_have_count(4)
    expect(status(page, DELETED)).to_be_visible()
    expect(add).to_be_enabled()
    authenticators.plug("new-key", SECURITY_KEY)
    add_passkey(page)
    expect(add).to_be_disabled()


@pytest.mark.server_env(TOBIRA_MAX_PASSKEYS=2)
def test_limit_reason_right_after_reaching_it(page: Page, server, mailsink, authenticators):
    """Regression: the "added" confirmation carried over the reload used to replace the limit
    reason in the one [role=status], leaving the disabled button unexplained."""
    log_in_with_code(page, server, mailsink)
    page.goto(server.url + "/account/passkeys")
    authenticators.plug("platform", PLATFORM)
    add_passkey(page)
    authenticators.plug("key", SECURITY_KEY)
    add_passkey(page)
    add = page.locator("#passkey-add")
    expect(add).to_be_disabled()
    # The contract: disabled at the limit, with the reason in [role=status] (it may also confirm
    # the addition, but the reason must be there for the disabled button it describes).
    expect(status(page, LIMIT_REACHED.format(limit=2))).to_be_visible(timeout=2_000)
    expect(page.locator("#" + add.get_attribute("aria-describedby"))).to_contain_text(LIMIT_REACHED.format(limit=2))


STEP_UP_WINDOW = 3


@pytest.mark.server_env(TOBIRA_STEP_UP_WINDOW=STEP_UP_WINDOW)
def test_step_up_before_adding_and_deleting(page: Page, server, mailsink, authenticators, screenshots):
    """With a 3-second step-up window, each action below waits the window out first, so each one
    deterministically asks for a step-up (by e-mailed code, or by a passkey)."""
    verified = log_in_with_code(page, server, mailsink)
    page.goto(server.url + "/account/passkeys")
    dialog = page.locator("#step-up-dialog")

    # --- adding a passkey after the window: the step-up dialog, then the ceremony --------------
    # The customer has no passkey yet, so the dialog offers only the e-mailed code.
    expect(dialog).to_have_attribute("data-has-passkey", "no")
    expect(dialog.locator("[data-step-up=passkey]")).to_have_count(0)
    authenticators.plug("platform", PLATFORM)
    wait_until_stale(verified, STEP_UP_WINDOW)

    def by_email():
        nonlocal verified
        verified = step_up_with_email(page, mailsink)

    add_passkey(page, step_up=by_email)

    wait_until_stale(verified, STEP_UP_WINDOW)
    authenticators.plug("key", SECURITY_KEY)
    add_passkey(page, step_up=by_email)
    platform_id, key_id = (rows(page).nth(i).get_attribute("data-passkey-id") for i in (0, 1))

    # --- delete after the window: confirm, then the step-up dialog (now with a passkey option) --
    wait_until_stale(verified, STEP_UP_WINDOW)
    key_row = page.locator(f"[data-passkey-id='{key_id}']")
    key_row.locator("[data-action=delete]").click()
    page.locator("#delete-dialog [data-action=confirm]").click()
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-step-up=passkey]")).to_be_visible()
    expect(dialog.locator("[data-step-up=email]")).to_be_visible()
    page.screenshot(path=str(screenshots / "step-up-dialog-desktop.png"), full_page=True)
    # Cancelling the step-up cancels the deletion.
    dialog.locator("[data-step-up=cancel]").click()
    expect(dialog).to_be_hidden()
    expect(rows(page)).to_have_count(2)
    expect(alert(page)).to_be_hidden()

    # Again, confirming with the passkey that is about to go (the security key is plugged in).
    key_row.locator("[data-action=delete]").click()
    page.locator("#delete-dialog [data-action=confirm]").click()
    expect(dialog).to_be_visible()
    dialog.locator("[data-step-up=passkey]").click()
    expect(rows(page)).to_have_count(1)
    verified = time.monotonic()
    expect(status(page, DELETED)).to_be_visible()
    expect(key_row).to_have_count(0)

    # --- and the last one with the e-mailed code -------------------------------------------------
    wait_until_stale(verified, STEP_UP_WINDOW)
    page.locator(f"[data-passkey-id='{platform_id}'] [data-action=delete]").click()
    page.locator("#delete-dialog [data-action=confirm]").click()
    step_up_with_email(page, mailsink, screenshot=screenshots / "step-up-code-desktop.png")
    expect(rows(page)).to_have_count(0)
    expect(status(page, DELETED)).to_be_visible()
    expect(page.locator(".empty")).to_be_visible()
    page.reload()
    expect(rows(page)).to_have_count(0)

    page.goto(server.url + "/account")
    expect(page.locator("#passkey-invite")).to_be_visible()
    assert session_info(page, server)["passkey_count"] == 0


def _unknown_credential() -> dict:
    """A resident credential for rpId localhost that Tobira never registered (CDP's base64 form)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "credentialId": base64.b64encode(os.urandom(32)).decode(),
        "isResidentCredential": True,
        "rpId": "localhost",
        "privateKey": base64.b64encode(private_key).decode(),
        "userHandle": base64.b64encode(os.urandom(32)).decode(),
        "signCount": 0,
    }


def test_unknown_passkey_is_refused_and_forgotten(page: Page, server, authenticators, screenshots):
    reports = watch_webauthn(page)
    authenticators.plug("stranger", PLATFORM, presence=False)
    stranger = _unknown_credential()
    authenticators.add_credential(stranger)
    stranger_id = b64url(stranger["credentialId"])

    page.goto(server.url + "/login")
    conditional = open_login_with_pending_autofill(page, server, authenticators, reports)
    assert conditional["state"] == "pending"
    page.locator("#passkey-login").click()

    expect(page.locator("[role=alert]")).to_have_text(UNKNOWN_PASSKEY)
    expect(page).to_have_url(re.compile(r"/login$"))
    assert page.request.get(server.url + "/api/session").status == 401
    page.screenshot(path=str(screenshots / "login-unknown-passkey-desktop.png"), full_page=True)

    # The page told the browser the passkey is unknown here (WebAuthn L3 signal) ...
    if page.evaluate("typeof PublicKeyCredential.signalUnknownCredential === 'function'"):
        signals = eventually(page, lambda: [r for r in reports if r.get("signal")], message="signalUnknownCredential")
        assert signals == [{"signal": "signalUnknownCredential",
                            "details": {"rpId": "localhost", "credentialId": stranger_id}}], reports
        # ... and Chromium acted on it: the virtual authenticator no longer holds that passkey.
        eventually(page, lambda: authenticators.credentials() == [], message="the unknown passkey removed")
        assert [b64url(e["credentialId"]) for e in authenticators.deleted] == [stranger_id]


# Makes every modal navigator.credentials.get take `window.__tobiraGetDelay` ms before it starts,
# the time a customer takes to pick a passkey and touch the sensor.
SLOW_CUSTOMER = """
(() => {
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = async function (options) {
    if (!(options && options.mediation)) {
      await new Promise((resolve) => setTimeout(resolve, window.__tobiraGetDelay || 0));
    }
    return get(options);
  };
})();
"""


def test_button_login_while_the_autofill_options_are_still_loading(page: Page, server, mailsink, authenticators):
    """Regression: on a first visit (no session cookie) the autofill's and the button's
    POST /api/login/passkey/options each created an anonymous session; when the autofill's answer
    came last its cookie replaced the button's, so the button's ceremony belonged to another
    session and the login failed with 400 ceremony_expired."""
    # A customer with a passkey on this (platform) authenticator.
    authenticators.plug("platform", PLATFORM)
    log_in_with_code(page, server, mailsink)
    page.locator("#passkey-create").click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))
    expect(rows(page)).to_have_count(1)
    page.goto(server.url + "/account")
    authenticators.set_presence(False)  # no autofill login on the way out
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login$"))
    page.goto("about:blank")  # nothing left of that page (its autofill request) when the route is set
    authenticators.set_presence(True)

    # A first visit (no session cookie) on a slow line: the autofill's options request, sent as the
    # page loads, is answered only after the customer pressed the button and the button's own
    # options request was answered, while the customer is still touching the sensor.
    page.context.clear_cookies()
    page.add_init_script(SLOW_CUSTOMER)
    held = []

    def options(route):
        if held:
            return route.continue_()
        # The autofill's request reaches the server now, as sent (no cookie yet); its answer is held.
        # (Sent with httpx: route.fetch() would store the answer's cookie in the browser at once.)
        request = route.request
        answer = httpx.post(request.url, headers={k: v for k, v in request.headers.items() if k != "cookie"},
                            content=request.post_data_buffer or b"")
        held.append((route, answer))

    page.route("**/api/login/passkey/options", options)
    page.goto(server.url + "/login")
    eventually(page, lambda: held, message="the autofill's options request")
    page.evaluate("window.__tobiraGetDelay = 1500")
    answered: list[str] = []
    page.on("response", lambda r: r.url.endswith("/api/login/passkey/options") and answered.append(r.url))
    page.locator("#passkey-login").click()
    # The button's own options request is answered (a page that waits for the autofill's answer
    # first sends nothing yet: then give up waiting after a second) ...
    deadline = time.monotonic() + 1.0
    while not answered and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    # ... and now the autofill's late answer arrives (its WebAuthn request was aborted, not its fetch),
    # while the customer is still touching the sensor.
    late_route, late = held[0]
    late_route.fulfill(status=late.status_code, headers=dict(late.headers), body=late.content)

    # The button's login should still succeed.
    expect(page).to_have_url(re.compile(r"/account$"), timeout=5_000)
