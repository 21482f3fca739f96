"""The passkey date in the browser: the banner before it, the restriction page after it.

TOBIRA_PASSKEY_MANDATORY_FROM is set per test through the `server_env` marker of e2e/conftest.py:
a date in the future (2027-04-01, it is late 2026) for "before", one in the past for "after".
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
from mailsink import body
from playwright.sync_api import Page, expect

from .support import CUSTOMER_CODE, EMAIL, NAME, PASSWORD, PHONE

BEFORE = "2027-04-01T00:00"  # no offset: Japan time
AFTER = "2026-01-05T09:00"

# Kanji, kana and full-width forms: none of them belongs on an English page.
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]")


def code_mails(mailsink) -> list:
    """Mails to the customer that carry a code (a code stands alone on its own line)."""
    return [m for m in mailsink.to(EMAIL) if re.search(r"^\d{6}\r?$", body(m), re.M)]


def add_platform_authenticator(page: Page):
    """A CDP virtual platform authenticator (Touch ID-like, user verification) on `page`."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator_id = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True,
    }})["authenticatorId"]
    return cdp, authenticator_id


def password_login(page: Page, server, mailsink, *, password: str = PASSWORD, lang: str = "") -> None:
    """Customer code + password on /login, then the e-mailed code on /login/code (a new one each time)."""
    query = "?lang=en" if lang == "en" else ""
    codes_before = len(code_mails(mailsink))
    page.goto(server.url + "/login" + query)
    page.locator("input[name=customer_code]").fill(CUSTOMER_CODE)
    page.locator("input[name=password]").fill(password)
    page.locator("#login-submit").click()
    if password != PASSWORD:
        expect(page.locator("#login-error")).to_be_visible()
        return
    page.wait_for_url(re.compile(r"/login/code(\?lang=en)?$"))
    deadline = time.monotonic() + 10
    while len(code_mails(mailsink)) <= codes_before:  # this login's code, not an older one
        assert time.monotonic() < deadline, "no code mail"
        time.sleep(0.05)
    page.locator("input[name=code]").fill(mailsink.last_code(EMAIL))
    page.locator("#code-submit").click()


def assert_fits(page: Page, width: int) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url}: {scroll_width}px wide on a {width}px screen"


# --- before the date: the banner ----------------------------------------------------------------


@pytest.mark.server_env(TOBIRA_PASSKEY_MANDATORY_FROM=BEFORE)
def test_banner_before_the_date_creates_a_passkey_in_one_click(page: Page, server, mailsink, screenshots):
    # A mistyped password first, so the activity page has a failed login among its rows.
    password_login(page, server, mailsink, password="not the password")
    password_login(page, server, mailsink)
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")

    # --- /account: the banner says when, what changes, and offers the one-click way out -----------
    banner = page.locator("#passkey-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("2027年4月1日")
    expect(banner).to_contain_text("出金・出金口座の変更・メールアドレスの変更・取引には、パスキーでのログインが必要になります")
    expect(banner).to_contain_text("パスワードと確認コードでのログインでは、これらの操作ができなくなります")
    create = page.locator("#banner-passkey-create")
    expect(create).to_be_visible()
    expect(create).to_have_text("パスキーを作成")
    expect(page.locator("#banner-relogin")).to_have_count(0)
    expect(page.locator("#banner-error")).to_be_hidden()
    # The banner comes before the page's own content, so it is read first.
    assert page.evaluate("""() => !!(document.getElementById('passkey-banner').compareDocumentPosition(
        document.querySelector('main h1')) & Node.DOCUMENT_POSITION_FOLLOWING)""")
    page.screenshot(path=str(screenshots / "account-banner.png"), full_page=True)

    # --- /account/activity: the banner too, and the events newest first ---------------------------
    page.get_by_role("link", name="ログイン・セキュリティ履歴").click()
    page.wait_for_url(re.compile(r"/account/activity$"))
    expect(page.locator("h1")).to_have_text("ログイン・セキュリティ履歴")
    expect(page.locator("#passkey-banner")).to_be_visible()
    expect(page.locator("#passkey-banner")).to_contain_text("2027年4月1日")
    expect(page.locator("#banner-passkey-create")).to_be_visible()
    rows = page.locator("[data-event]")
    expect(rows.first).to_be_visible()
    kinds = rows.evaluate_all("rows => rows.map(r => r.dataset.event)")
    assert kinds[0] == "login", kinds  # the newest event is the login that opened this page
    for kind in ("login", "code_sent", "login_failed"):
        assert kind in kinds, kinds
    assert kinds.index("login") < kinds.index("code_sent") < kinds.index("login_failed"), kinds
    expect(rows.first).to_contain_text("ログイン（メールの確認コード）")
    expect(rows.filter(has_text="ログインに失敗")).to_have_count(1)
    stamps = rows.locator("time").evaluate_all("times => times.map(t => t.getAttribute('datetime'))")
    assert len(stamps) == len(kinds), stamps
    when = [datetime.fromisoformat(s) for s in stamps]
    assert all(w.tzinfo is not None for w in when), stamps
    assert when == sorted(when, reverse=True), stamps
    page.screenshot(path=str(screenshots / "activity.png"), full_page=True)

    # --- one click on the banner: a passkey, and the banner is gone -------------------------------
    add_platform_authenticator(page)
    page.goto(server.url + "/account")
    page.locator("#banner-passkey-create").click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))
    expect(page.locator("[data-passkey-id]")).to_have_count(1)
    expect(page.locator("#passkey-banner")).to_have_count(0)
    expect(page.locator("#step-up-dialog")).not_to_be_visible()  # a fresh login needs no step-up

    page.goto(server.url + "/account")
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    expect(page.locator("#passkey-banner")).to_have_count(0)
    expect(page.locator("#passkey-invite")).to_have_count(0)
    page.goto(server.url + "/account/activity")
    expect(page.locator("#passkey-banner")).to_have_count(0)
    expect(page.locator("[data-event]").first).to_have_attribute("data-event", "passkey_added")


@pytest.mark.server_env(TOBIRA_PASSKEY_MANDATORY_FROM=BEFORE)
def test_banner_in_english(page: Page, server, mailsink):
    password_login(page, server, mailsink, lang="en")
    page.wait_for_url(re.compile(r"/account\?lang=en$"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    banner = page.locator("#passkey-banner")
    expect(banner).to_contain_text("From April 1, 2027")
    expect(banner).to_contain_text("a password and e-mailed code will no longer be enough")
    expect(page.locator("#banner-passkey-create")).to_have_text("Create a passkey")
    assert not JAPANESE.search(banner.inner_text()), banner.inner_text()


# --- after the date: the restriction page --------------------------------------------------------


@pytest.mark.server_env(TOBIRA_PASSKEY_MANDATORY_FROM=AFTER)
def test_password_login_after_the_date_lands_on_the_restriction_page(page: Page, browser, server, mailsink,
                                                                      screenshots):
    password_login(page, server, mailsink)
    page.wait_for_url(re.compile(r"/account/passkey-required$"))

    restricted = page.locator("#passkey-required")
    expect(restricted).to_be_visible()
    expect(page.locator("h1")).to_have_text("パスキーでのログインが必要です")
    expect(restricted).to_contain_text("2026年1月5日")
    expect(restricted).to_contain_text("出金・出金口座の変更・メールアドレスの変更・取引は、パスキーでログインした場合に限り")
    expect(restricted).to_contain_text("残高や取引履歴の確認、パスキーの作成はできます")
    expect(restricted).to_contain_text("パスキーを作成すると")
    # The way out is one click away: the banner above the explanation creates a passkey.
    expect(page.locator("#passkey-banner")).to_be_visible()
    expect(page.locator("#banner-passkey-create")).to_be_visible()
    page.screenshot(path=str(screenshots / "restricted.png"), full_page=True)

    # The same page on a phone (the session cookie carried over to a phone-sized browser).
    phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                locale="ja-JP")
    try:
        phone.add_cookies(page.context.cookies())
        phone_page = phone.new_page()
        phone_page.goto(server.url + "/account/passkey-required")
        expect(phone_page.locator("#passkey-required")).to_be_visible()
        expect(phone_page.locator("#banner-passkey-create")).to_be_visible()
        assert_fits(phone_page, PHONE["width"])
        phone_page.screenshot(path=str(screenshots / "restricted-phone.png"), full_page=True)
    finally:
        phone.close()

    # --- /account stays reachable, with the "after" banner -----------------------------------------
    page.get_by_role("link", name="マイアカウントへ進む").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    expect(page.locator(".facts")).to_contain_text(CUSTOMER_CODE)
    banner = page.locator("#passkey-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("2026年1月5日")
    expect(banner).to_contain_text("パスキーでのログインが必要です")
    expect(banner).not_to_contain_text("今のうちに")  # that is the "before" wording
    expect(page.locator("#banner-passkey-create")).to_be_visible()

    # --- English ------------------------------------------------------------------------------------
    page.goto(server.url + "/account/passkey-required?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("A passkey login is needed")
    restricted = page.locator("#passkey-required")
    expect(restricted).to_contain_text("Since January 5, 2026")
    expect(restricted).to_contain_text("are only possible after logging in with a passkey")
    expect(restricted).to_contain_text("you can still see your balances and history, and create a passkey")
    expect(page.get_by_role("link", name="Go to my account")).to_have_attribute("href", "/account?lang=en")
    expect(page.locator("#banner-passkey-create")).to_have_text("Create a passkey")
    for locator in (restricted, page.locator("#passkey-banner"), page.locator("title")):
        text = locator.text_content()
        assert not JAPANESE.search(text), text
    page.goto(server.url + "/account?lang=en")
    expect(page.locator("#passkey-banner")).to_contain_text(
        "Since January 5, 2026 09:00 (Japan time), withdrawals, changing the bank account or e-mail address, "
        "and trading need a login with a passkey.")


@pytest.mark.server_env(TOBIRA_PASSKEY_MANDATORY_FROM=AFTER)
def test_restriction_page_leads_to_a_passkey_then_a_new_login(page: Page, server, mailsink):
    password_login(page, server, mailsink)
    page.wait_for_url(re.compile(r"/account/passkey-required$"))
    add_platform_authenticator(page)
    page.locator("#banner-passkey-create").click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))
    expect(page.locator("[data-passkey-id]")).to_have_count(1)

    # This session is still a password one: the banner now asks for a login with the new passkey.
    page.goto(server.url + "/account/passkey-required")
    expect(page.locator("#passkey-required")).to_contain_text("パスキーは登録済みです")
    expect(page.locator("#banner-passkey-create")).to_have_count(0)
    relogin = page.locator("#banner-relogin")
    expect(relogin).to_have_text("パスキーでログインし直す")
    # Out to /login, where the autofill on the customer-code field offers the new passkey: Chromium's
    # virtual platform authenticator answers that conditional request by itself, as the customer
    # would by picking the passkey from the list. (Pressing #passkey-login as well would race it.)
    visited: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and visited.append(frame.url))
    relogin.click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    assert any(url.endswith("/login") for url in visited), visited
    expect(page.locator(".facts")).to_contain_text("パスキー")
    expect(page.locator("#passkey-banner")).to_have_count(0)  # a passkey session: nothing to tell
