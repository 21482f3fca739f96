"""The legacy login driven through the real pages in Chromium.

/login (customer code + password) -> /login/code (a wrong code first, then the mailed one, with
"remember this PC") -> /account -> log out -> log in again: the remembered PC skips the code.
"""

from __future__ import annotations

import re

from mailsink import body
from playwright.sync_api import Page, expect

from .support import CUSTOMER_CODE, EMAIL, NAME, PASSWORD, PHONE


def code_mails(mailsink, address: str = EMAIL) -> list:
    """Mails to `address` that carry a code (a code stands alone on its own line)."""
    return [m for m in mailsink.to(address) if re.search(r"^\d{6}\r?$", body(m), re.M)]


def submit_password(page: Page, server, password: str = PASSWORD, *, path: str = "/login") -> None:
    page.goto(server.url + path)
    page.locator("input[name=customer_code]").fill(CUSTOMER_CODE)
    page.locator("input[name=password]").fill(password)
    page.locator("#login-submit").click()


def test_login_with_code_then_trusted_device(page: Page, server, mailsink, screenshots):
    visited: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and visited.append(frame.url))

    # --- /login ------------------------------------------------------------------------------
    page.goto(server.url + "/login")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator("h1")).to_have_text("ログイン")
    expect(page.get_by_role("alert")).to_have_count(0)  # the empty alert box is hidden
    page.screenshot(path=str(screenshots / "login-desktop.png"), full_page=True)

    submit_password(page, server)
    page.wait_for_url(re.compile(r"/login/code$"))
    expect(page.locator("h1")).to_have_text("確認コードの入力")
    expect(page.locator("main")).to_contain_text("t***@example.com")

    # --- /login/code: a wrong code first ------------------------------------------------------
    real = mailsink.last_code(EMAIL)
    assert len(code_mails(mailsink)) == 1
    wrong = "000000" if real != "000000" else "111111"
    page.locator("input[name=code]").fill(wrong)
    page.locator("#code-submit").click()
    alert = page.locator("[role=alert]")
    expect(alert).to_be_visible()
    # code_max_attempts is 3 by default: one wrong entry leaves two.
    expect(alert).to_have_text("確認コードが正しくありません。あと2回入力できます。")
    expect(page).to_have_url(re.compile(r"/login/code$"))
    page.screenshot(path=str(screenshots / "code-wrong-desktop.png"), full_page=True)

    # --- the real code, remembering this PC ---------------------------------------------------
    page.locator("input[name=code]").fill(real)
    page.locator("input[name=remember_device]").check()
    page.locator("#code-submit").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator("main")).to_contain_text(NAME)
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    expect(page.locator(".facts")).to_contain_text(CUSTOMER_CODE)
    expect(page.locator(".facts")).to_contain_text("パスワード＋メールの確認コード")
    cookies = {c["name"] for c in page.context.cookies()}
    assert "tobira_device" in cookies, cookies
    page.screenshot(path=str(screenshots / "account-desktop.png"), full_page=True)

    # --- log out ------------------------------------------------------------------------------
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login$"))
    expect(page.locator("#login-submit")).to_be_visible()
    page.goto(server.url + "/account")
    page.wait_for_url(re.compile(r"/login\?next=%2Faccount$"))  # the session really ended

    # --- again: the remembered PC needs only the password -------------------------------------
    codes_before = len(code_mails(mailsink))
    visited.clear()
    submit_password(page, server)
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator(".greeting")).to_have_text(f"{NAME} 様")
    expect(page.locator(".facts")).to_contain_text("パスワード＋記憶済みのPC")
    assert not any("/login/code" in url for url in visited), visited
    # The code mail would be sent before the API answered, so it would be in the sink by now; the
    # login notice (sent later by the outbox) shows the server saw a trusted-device login.
    mailsink.wait_for(lambda m: EMAIL in m["To"] and "記憶済みのPC" in body(m))
    assert len(code_mails(mailsink)) == codes_before


def test_wrong_password_shows_alert(page: Page, server, mailsink):
    submit_password(page, server, password="not the password")
    alert = page.locator("[role=alert]")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("お客様コードまたはパスワードが正しくありません。")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("input[name=password]")).to_have_value("")
    assert code_mails(mailsink) == []


def test_english_login_page(page: Page, server):
    page.goto(server.url + "/login?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Log in")
    # The page's requests carry ?lang=en, so its errors are in English too.
    submit_password(page, server, password="not the password", path="/login?lang=en")
    expect(page.locator("[role=alert]")).to_contain_text("The customer code or password is not correct.")


def test_login_page_on_a_phone(browser, server, screenshots):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="ja-JP")
    try:
        page = context.new_page()
        page.goto(server.url + "/login")
        expect(page.locator("#login-submit")).to_be_visible()
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(screenshots / "login-phone.png"), full_page=True)
    finally:
        context.close()
