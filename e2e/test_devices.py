"""/account/devices with two browsers: each sees both sessions; signing the other one out ends it there."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .support import PHONE, log_in_with_code

IPHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/18.0 Mobile/15E148 Safari/604.1")


def test_sign_the_other_browser_out_from_the_devices_page(browser, page: Page, server, mailsink, screenshots):
    phone_context = browser.new_context(viewport=PHONE, locale="ja-JP", user_agent=IPHONE_UA)
    phone = phone_context.new_page()
    try:
        log_in_with_code(page, server, mailsink)
        log_in_with_code(phone, server, mailsink)
        page.goto(server.url + "/account")
        page.locator("#devices-link").click()
        page.wait_for_url(re.compile(r"/account/devices$"))
        rows = page.locator("[data-session-id]")
        expect(rows).to_have_count(2)
        expect(page.locator("[data-current=yes] .badge")).to_have_text("この端末")
        expect(rows.filter(has_text="iPhone")).to_have_count(1)
        page.screenshot(path=str(screenshots / "devices-desktop.png"), full_page=True)
        phone.goto(server.url + "/account/devices")
        phone.screenshot(path=str(screenshots / "devices-phone.png"), full_page=True)

        rows.filter(has_text="iPhone").locator("[data-action=end-session]").click()
        expect(page.locator("[data-session-id]")).to_have_count(1)
        expect(page.locator("#end-others")).to_have_count(0)
        phone.goto(server.url + "/account")
        phone.wait_for_url(re.compile(r"/login"))  # signed out there
        page.goto(server.url + "/account/activity")
        expect(page.locator("[data-event=session_ended]")).to_have_count(1)
    finally:
        phone_context.close()
