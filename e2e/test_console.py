"""The staff console in Chromium (issue 15): staff enrol a passkey with the code `tobira staff add`
printed, sign in with it, find a customer, unlock with a reason (the customer sees it on their
activity page), and reset a customer's passkeys, which waits for a second staff member."""

from __future__ import annotations

import re
import subprocess
import sys

from playwright.sync_api import Page, expect

from .support import CUSTOMER_CODE, DESKTOP, EMAIL, PLATFORM, SECURITY_KEY, Authenticators, log_in_with_code

NO_CONDITIONAL_CREATE = """
(() => { if (window.PublicKeyCredential) PublicKeyCredential.getClientCapabilities = async () => ({}); })();
"""


def tobira(server, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "server", *args], env=server.env, capture_output=True, text=True,
                          timeout=60, cwd=server.env["TOBIRA_DATA_DIR"])
    assert done.returncode == 0, done.stderr
    return done.stdout


def add_staff(server, name: str, role: str) -> str:
    out = tobira(server, "staff", "add", name, "--role", role)
    return re.search(r"enrolment_code: (\S+)", out).group(1)


def staff_browser(browser, server, name: str, role: str, authenticator: dict) -> tuple[Page, Authenticators]:
    """A staff member's own browser and authenticator, enrolled and signed in through the pages."""
    code = add_staff(server, name, role)
    page = browser.new_context(viewport=DESKTOP, locale="ja-JP").new_page()
    bench = Authenticators(page)
    bench.plug(name, authenticator)
    page.goto(server.url + "/admin/enrol")
    page.locator("#staff-name").fill(name)
    page.locator("#enrolment-code").fill(code)
    page.locator("#enrol-submit").click()
    page.wait_for_url(re.compile(r"/admin$"))
    return page, bench


def test_enrol_sign_in_find_and_unlock_with_a_reason(browser, server, mailsink, screenshots):
    # The customer locks password sign-in with wrong passwords (TOBIRA_LOCK_AFTER_FAILURES, default 10).
    import httpx

    with httpx.Client(base_url=server.url, headers={"Origin": server.url}) as c:
        for _ in range(10):
            c.post("/api/login/password", json={"customer_code": CUSTOMER_CODE, "password": "wrong password"})

    page, bench = staff_browser(browser, server, "sato", "support", PLATFORM)
    # Signed out, then in again with the passkey alone.
    page.locator("#staff-logout").click()
    page.wait_for_url(re.compile(r"/admin/login$"))
    page.screenshot(path=str(screenshots / "console-login.png"), full_page=True)
    page.locator("#staff-login").click()
    page.wait_for_url(re.compile(r"/admin$"))

    page.locator("#customer-query").fill(EMAIL)
    page.keyboard.press("Enter")
    page.locator("#customer-results a", has_text=CUSTOMER_CODE).click()
    page.wait_for_url(re.compile(rf"/admin/customers/{CUSTOMER_CODE}$"))
    expect(page.locator("#customer-locked")).to_contain_text("パスワードのロック")
    page.screenshot(path=str(screenshots / "console-customer.png"), full_page=True)

    page.locator("#action").select_option("unlock")
    page.locator("#action-submit").click()  # no reason: refused
    expect(page.locator("#console-error")).to_be_visible()
    page.locator("#reason").fill("電話で本人確認済み チケット#5521")
    page.locator("#action-submit").click()
    expect(page.locator("#console-status")).to_have_text("実行しました。")

    # The customer logs in and reads it on their activity page.
    customer = browser.new_context(viewport=DESKTOP, locale="ja-JP").new_page()
    log_in_with_code(customer, server, mailsink)
    customer.goto(server.url + "/account/activity")
    expect(customer.locator("tr[data-event=account_unlocked]")).to_contain_text("サポートデスクがロックを解除しました")
    bench.close()


def test_a_passkey_reset_waits_for_a_second_staff_member(browser, server, mailsink, screenshots):
    # The customer has a passkey.
    customer = browser.new_context(viewport=DESKTOP, locale="ja-JP").new_page()
    customer.add_init_script(NO_CONDITIONAL_CREATE)
    own = Authenticators(customer)
    own.plug("phone", PLATFORM)
    log_in_with_code(customer, server, mailsink)
    customer.locator("#passkey-create").click()
    customer.wait_for_url(re.compile(r"/account/passkeys$"))

    requester, bench_a = staff_browser(browser, server, "tanaka", "support", PLATFORM)
    approver, bench_b = staff_browser(browser, server, "suzuki", "admin", SECURITY_KEY)

    requester.goto(f"{server.url}/admin/customers/{CUSTOMER_CODE}")
    expect(requester.locator("#customer-passkeys tbody tr")).to_have_count(1)
    requester.locator("#action").select_option("reset-passkeys")
    requester.locator("#reason").fill("端末紛失 チケット#8812")
    requester.locator("#action-submit").click()
    expect(requester.locator("#console-status")).to_contain_text("承認待ち")
    mailsink.wait_for(lambda m: m["To"] == EMAIL and "依頼" in str(m["Subject"]))

    # The requester cannot approve it; the page offers them no button.
    requester.goto(server.url + "/admin/approvals")
    expect(requester.locator("#approvals button.approve")).to_have_count(0)

    approver.goto(server.url + "/admin/approvals")
    expect(approver.locator("#approvals tbody tr")).to_have_count(1)
    approver.screenshot(path=str(screenshots / "console-approvals.png"), full_page=True)
    approver.locator("#approvals button.approve").click()
    expect(approver.locator("#console-status")).to_have_text("承認し、実行しました。")
    mailsink.wait_for(lambda m: m["To"] == EMAIL and "パスキーをリセットしました" in str(m["Subject"]))

    approver.goto(f"{server.url}/admin/customers/{CUSTOMER_CODE}")
    expect(approver.locator("#customer-passkeys")).to_have_count(0)  # none left
    approver.goto(server.url + "/admin/audit")
    expect(approver.locator("#audit")).to_contain_text("approve:reset-passkeys")
    approver.screenshot(path=str(screenshots / "console-audit.png"), full_page=True)
    approver.goto(server.url + "/admin/adoption")
    approver.screenshot(path=str(screenshots / "console-adoption.png"), full_page=True)
    customer.goto(server.url + "/account")
    customer.wait_for_url(re.compile(r"/login"))  # the reset ended the customer's sessions
    for bench in (own, bench_a, bench_b):
        bench.close()


def test_the_console_works_with_the_keyboard_alone(browser, server, mailsink):
    """Sign in, find a customer, and act with a reason, pressing keys only (no mouse)."""
    page, bench = staff_browser(browser, server, "kono", "support", PLATFORM)
    page.locator("#staff-logout").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/admin/login$"))
    expect(page.locator("#staff-login")).to_be_visible()
    for _ in range(10):  # on to the sign-in button
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "staff-login":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/admin$"))

    expect(page.locator("#customer-query")).to_be_focused()
    page.keyboard.type(CUSTOMER_CODE)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/admin\?q="))
    expect(page.locator("#customer-results")).to_be_visible()
    for _ in range(20):  # on to the result's link
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == CUSTOMER_CODE:
            break
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/admin/customers/{CUSTOMER_CODE}$"))
    expect(page.locator("#action")).to_be_visible()

    for _ in range(20):  # on to the action list
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "action":
            break
    page.keyboard.press("ArrowDown")  # unlock -> hold
    assert page.locator("#action").input_value() == "hold"
    page.keyboard.press("Tab")  # the new e-mail field (not for a hold)
    page.keyboard.press("Tab")  # the reason
    page.keyboard.type("ticket 77: suspected takeover")
    page.keyboard.press("Enter")
    expect(page.locator("#console-status")).to_have_text("実行しました。")
    page.reload()
    expect(page.locator("#customer-locked")).to_contain_text("一時停止")
    bench.close()
