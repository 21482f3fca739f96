"""What the browser tests share: the test customer, browser settings, and helpers.

Test files import from here (`from .support import ...`), never `from conftest import`: e2e is a
package, and tests/conftest.py is the module the name `conftest` means.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

CUSTOMER_CODE = "TARO1234"
EMAIL = "taro@example.com"
NAME = "山田 太郎"
PASSWORD = "correct horse battery"


def add_virtual_authenticator(page, **options) -> tuple[object, str]:
    """A CDP virtual authenticator on `page` (platform passkey with user verification).

    Returns (cdp_session, authenticator_id); later passkey tests use the session for
    WebAuthn.getCredentials and friends.
    """
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    result = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        **options,
    }})
    return cdp, result["authenticatorId"]
