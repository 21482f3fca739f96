"""The password lock and new passkeys on hold, as a customer sees them in Chromium.

- After TOBIRA_LOCK_AFTER_FAILURES wrong passwords only the password + code path is locked: the right
  password then gets the very same error as a wrong one, a passkey still logs in, /account says so
  (#password-locked) and a passkey verification lifts the lock (#password-unlock).
- From TOBIRA_PASSKEY_MANDATORY_FROM on, a passkey made from a password + code session is on hold
  (TOBIRA_NEW_PASSKEY_HOLD, a day by default): its row shows it, /account says so after logging in
  with it (#passkey-on-hold), and a password + code session of a customer who has a passkey may add
  another only after a passkey step-up (the dialog offers nothing else).

Authenticators come from the `authenticators` fixture (support.Authenticators). With automatic
presence on, Chromium's virtual platform authenticator answers the autofill (conditional) request on
/login by itself, i.e. logs in with the passkey as if the customer had picked it. Wherever the
customer types a password instead, presence is switched off before /login opens, and switched on
again only right before the customer presses "log in with passkey".
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .support import CUSTOMER_CODE, EMAIL, NAME, PASSWORD, PLATFORM, code_mails, new_code

LOCK_AFTER = 3
PAST = "2020-01-01T00:00:00+09:00"  # the passkey date, long past

WRONG_PASSWORD_ERROR = "お客様コードまたはパスワードが正しくありません。失敗が続くと、パスワードでのログインはロックされます。"
UNLOCKED = "パスワードでのログインのロックを解除しました。"

# Kanji, kana and full-width forms: none of them belongs on an English page.
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]")


# --- helpers -----------------------------------------------------------------------------------




def session_info(page: Page, server) -> dict:
    response = page.request.get(server.url + "/api/session")
    assert response.status == 200, response.text()
    return response.json()


def type_password(page: Page, password: str) -> int:
    """Customer code + `password` on the open /login page; returns the HTTP status of the answer."""
    page.locator("input[name=customer_code]").fill(CUSTOMER_CODE)
    page.locator("input[name=password]").fill(password)
    with page.expect_response(lambda r: r.url.endswith("/api/login/password")) as answer:
        page.locator("#login-submit").click()
    return answer.value.status


def log_in_with_code(page: Page, server, mailsink, *, lands_on: str = "/account") -> None:
    """The legacy login (password, then the e-mailed code) from a fresh /login."""
    seen = len(code_mails(mailsink))
    page.goto(server.url + "/login")
    assert type_password(page, PASSWORD) == 200
    page.wait_for_url(re.compile(r"/login/code$"))
    page.locator("input[name=code]").fill(new_code(mailsink, seen))
    page.locator("#code-submit").click()
    page.wait_for_url(re.compile(re.escape(lands_on) + "$"))


# Counts the page's conditional (autofill) navigator.credentials.get calls in window.__tobiraAutofill.
AUTOFILL_SPY = """
(() => {
  if (!navigator.credentials) return;
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = function (options) {
    if (options && options.mediation === "conditional") window.__tobiraAutofill = (window.__tobiraAutofill || 0) + 1;
    return get(options);
  };
})();
"""


def log_out_to_login(page: Page, server, authenticators) -> None:
    """#logout on /account, with presence off so /login's autofill does not log straight back in."""
    authenticators.set_presence(False)
    if not page.url.endswith("/account"):
        page.goto(server.url + "/account")
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login$"))


def gap_above(page: Page, selector: str) -> float:
    """Pixels between the card at `selector` and the card just above it on the page."""
    return page.evaluate("""(selector) => {
        const card = document.querySelector(selector);
        const cards = [...document.querySelectorAll("main .card")];
        const above = cards[cards.indexOf(card) - 1];
        return card.getBoundingClientRect().top - above.getBoundingClientRect().bottom;
    }""", selector)


def press_passkey_login(page: Page, authenticators) -> None:
    """On /login (opened with presence off): "log in with passkey", the customer touching the sensor.

    The autofill request must be pending before presence goes on, or the authenticator would answer
    it by itself (a race with the button)."""
    page.wait_for_function("() => window.__tobiraAutofill >= 1")
    page.wait_for_timeout(200)  # the request on its way from the page to the authenticator
    authenticators.set_presence(True)
    page.locator("#passkey-login").click()


# --- 1. the locked password and the passkey that lifts the lock -----------------------------------


@pytest.mark.server_env(TOBIRA_LOCK_AFTER_FAILURES=LOCK_AFTER)
def test_locked_password_is_told_on_account_and_lifted_with_a_passkey(page: Page, server, mailsink,
                                                                      authenticators, screenshots):
    page.add_init_script(AUTOFILL_SPY)
    # A customer with a passkey on this computer's built-in authenticator.
    authenticators.plug("platform", PLATFORM)
    log_in_with_code(page, server, mailsink)
    page.locator("#passkey-create").click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))
    expect(page.locator("[data-passkey-id]")).to_have_count(1)
    log_out_to_login(page, server, authenticators)

    # --- wrong passwords until the lock ---------------------------------------------------------
    alert = page.locator("#login-error")
    expect(alert).to_have_attribute("role", "alert")
    for attempt in range(LOCK_AFTER):
        assert type_password(page, f"wrong guess {attempt}") == 401
        expect(alert).to_have_text(WRONG_PASSWORD_ERROR)
        expect(page).to_have_url(re.compile(r"/login$"))
    wrong_text = alert.text_content()
    mailsink.wait_for(lambda m: EMAIL in m["To"] and "パスワードでのログインをロックしました" in str(m["Subject"]))

    # --- the right password now gets exactly the answer a wrong one gets -------------------------
    codes_before = len(code_mails(mailsink))
    page.reload()  # no message left over from the last attempt
    expect(alert).to_be_hidden()
    assert type_password(page, PASSWORD) == 401
    expect(alert).to_have_text(wrong_text)
    expect(page).to_have_url(re.compile(r"/login$"))
    page.wait_for_timeout(300)
    assert len(code_mails(mailsink)) == codes_before  # and no code went out
    assert page.request.get(server.url + "/api/session").status == 401

    # --- the passkey still logs in --------------------------------------------------------------
    press_passkey_login(page, authenticators)
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    assert session_info(page, server)["auth_method"] == "passkey"

    # --- /account tells the customer, and offers the unlock -------------------------------------
    notice = page.locator("#password-locked")
    expect(notice).to_be_visible()
    expect(notice.locator("h2")).to_have_text("パスワードでのログインはロック中です")
    expect(notice).to_contain_text("ログインの失敗が続いたため")
    expect(notice).to_contain_text("パスキーでのログインはこれまでどおりお使いいただけます")
    expect(notice).to_contain_text("パスキーでご本人確認をすると、ご自身でロックを解除できます。")
    unlock = page.locator("#password-unlock")
    expect(unlock).to_be_visible()
    expect(unlock).to_have_text("ロックを解除する")
    assert gap_above(page, "#password-locked") >= 16, "the notice sticks to the card above"
    assert gap_above(page, "#password-locked ~ .card") >= 16, "the card below sticks to the notice"
    page.screenshot(path=str(screenshots / "account-password-locked.png"), full_page=True)

    page.goto(server.url + "/account?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    notice_en = page.locator("#password-locked")
    expect(notice_en.locator("h2")).to_have_text("Password sign-in is locked")
    expect(notice_en).to_contain_text("Logging in with your passkey works as before")
    expect(page.locator("#password-unlock")).to_have_text("Unlock password sign-in")
    assert not JAPANESE.search(notice_en.inner_text()), notice_en.inner_text()
    page.screenshot(path=str(screenshots / "account-password-locked-en.png"), full_page=True)

    # --- one click: the fresh passkey login is the step-up, so no dialog -------------------------
    page.goto(server.url + "/account")
    with page.expect_response(lambda r: r.url.endswith("/api/account/unlock-password")) as answer:
        unlock.click()
    assert answer.value.status == 200, answer.value.text()
    expect(page.locator("#password-locked")).to_have_count(0)
    expect(page.locator("#step-up-dialog")).to_be_hidden()
    unlocked = page.locator("#password-unlock-status")
    expect(unlocked).to_have_attribute("role", "status")
    expect(unlocked).to_have_text(UNLOCKED)
    expect(unlocked).to_be_visible()
    page.screenshot(path=str(screenshots / "account-password-unlocked.png"), full_page=True)
    mailsink.wait_for(lambda m: EMAIL in m["To"] and "ロックを解除しました" in str(m["Subject"]))
    page.reload()
    expect(page.locator("#password-locked")).to_have_count(0)

    # --- the password and the e-mailed code work again --------------------------------------------
    log_out_to_login(page, server, authenticators)
    log_in_with_code(page, server, mailsink)
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    assert session_info(page, server)["auth_method"] == "email_code"
    expect(page.locator("#password-locked")).to_have_count(0)


# --- 2. a passkey made after the passkey date from a code session is on hold ----------------------


@pytest.mark.server_env(TOBIRA_PASSKEY_MANDATORY_FROM=PAST)
def test_passkey_made_from_a_code_session_is_on_hold(page: Page, server, mailsink, authenticators,
                                                     screenshots):
    page.add_init_script(AUTOFILL_SPY)
    authenticators.plug("platform", PLATFORM)
    log_in_with_code(page, server, mailsink, lands_on="/account/passkey-required")
    page.locator("#banner-passkey-create").click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))

    # --- the new row says it is on hold, and until when ------------------------------------------
    row = page.locator("[data-passkey-id]")
    expect(row).to_have_count(1)
    hold = row.locator(".passkey-hold")
    expect(hold).to_be_visible()
    expect(hold).to_contain_text("まで確認期間中（お取引・ご出金などには使えません）")
    listed = page.request.get(server.url + "/api/passkeys").json()["passkeys"]
    assert listed[0]["hold_until"] is not None, listed
    page.screenshot(path=str(screenshots / "passkeys-on-hold.png"), full_page=True)

    # --- log in with it: /account says the new passkey is on hold ----------------------------------
    log_out_to_login(page, server, authenticators)
    press_passkey_login(page, authenticators)
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    info = session_info(page, server)
    assert info["auth_method"] == "passkey", info
    assert info["important_operations_allowed"] is False, info
    assert info["important_operations_reason"] == "passkey_on_hold", info
    assert info["hold_until"] == listed[0]["hold_until"], (info, listed)
    on_hold = page.locator("#passkey-on-hold")
    expect(on_hold).to_be_visible()
    expect(on_hold.locator("h2")).to_have_text("新しいパスキーの確認期間中です")
    expect(on_hold).to_contain_text("お取引・ご出金などの重要な操作に使えません")
    expect(on_hold).to_contain_text("お客様サポートへお電話ください")
    assert gap_above(page, "#passkey-on-hold") >= 16, "the notice sticks to the card above"
    page.screenshot(path=str(screenshots / "account-passkey-on-hold.png"), full_page=True)
    page.goto(server.url + "/account?lang=en")
    on_hold_en = page.locator("#passkey-on-hold")
    expect(on_hold_en.locator("h2")).to_have_text("Your new passkey is on hold")
    expect(on_hold_en).to_contain_text("cannot be used for trading, withdrawals or other important operations")
    assert not JAPANESE.search(on_hold_en.inner_text()), on_hold_en.inner_text()
    page.screenshot(path=str(screenshots / "account-passkey-on-hold-en.png"), full_page=True)

    # --- a fresh password + code login may not add a passkey without that passkey ------------------
    log_out_to_login(page, server, authenticators)
    log_in_with_code(page, server, mailsink, lands_on="/account/passkey-required")
    assert session_info(page, server)["auth_method"] == "email_code"
    page.goto(server.url + "/account/passkeys")
    dialog = page.locator("#step-up-dialog")
    expect(dialog).to_be_hidden()
    with page.expect_response(lambda r: r.url.endswith("/api/passkeys/register/options")) as answer:
        page.locator("#passkey-add").click()
    assert answer.value.status == 403, answer.value.text()
    assert answer.value.json()["error"]["code"] == "step_up_required"
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-step-up=passkey]")).to_be_visible()
    expect(dialog.locator("[data-step-up=email]")).not_to_be_visible()
    expect(dialog.locator("[data-step-up=email]")).to_have_count(0)
    # The viewport only: the dialog's backdrop covers the screen, not a full-page capture.
    page.screenshot(path=str(screenshots / "step-up-passkey-only.png"))

    # Cancelling adds nothing and leaves no error behind.
    dialog.locator("[data-step-up=cancel]").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("[data-passkey-id]")).to_have_count(1)
    expect(page.locator("#passkeys-error")).to_be_hidden()
