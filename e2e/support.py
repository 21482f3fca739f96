"""What the browser tests share: the test customer, browser settings, and helpers.

Test files import from here (`from .support import ...`), never `from conftest import`: e2e is a
package, and tests/conftest.py is the module the name `conftest` means.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from mailsink import body

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


# --- virtual authenticators for the passkey tests ------------------------------------------------

# The two kinds of authenticator the passkey tests use: a platform authenticator (Touch ID,
# Windows Hello, Android's screen lock) and a roaming security key on USB. Both keep resident
# (discoverable) credentials and verify the user, as Tobira requires.
PLATFORM = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True}
SECURITY_KEY = {"protocol": "ctap2", "transport": "usb", "hasResidentKey": True,
                "hasUserVerification": True, "isUserVerified": True}


class Authenticators:
    """Virtual authenticators on one page, plugged in one at a time.

    Why one at a time: registration options list the customer's passkeys in `excludeCredentials`,
    so an authenticator that holds one of them refuses to make another (InvalidStateError). With
    several virtual authenticators attached, Chromium sends each request to all of them and the
    first answer wins, so which authenticator answers (and whether the answer is that refusal) is
    a race. Instead `plug()` removes the attached authenticator and attaches a fresh one: every
    request has exactly one possible answerer. Before removal the credentials are read back and
    kept under the authenticator's name, so `plug(name, restore=True)` can later attach "the same"
    device again (WebAuthn.addCredential) with its current keys and sign counters.

    Conditional (autofill) requests: Chromium offers conditional mediation only while a virtual
    *platform* authenticator is attached (isConditionalMediationAvailable() is false with only a
    security key), and that authenticator answers a conditional request by itself: with automatic
    presence simulation on, /login logs in through the autofill before any button is pressed.
    Tests that press #passkey-login with a platform authenticator attached open /login with
    presence off (the conditional request then stays pending, as it would while the customer
    ignores the autofill) and switch presence on with `set_presence(True)` before the click.
    """

    def __init__(self, page) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable")
        self.current: str | None = None  # the name of the attached authenticator
        self.current_id: str | None = None
        self.saved: dict[str, tuple[dict, list[dict]]] = {}  # name -> (options, credentials)
        self.deleted: list[dict] = []  # WebAuthn.credentialDeleted events (e.g. signalUnknownCredential)
        self.cdp.on("WebAuthn.credentialDeleted", lambda event: self.deleted.append(event))

    def plug(self, name: str, options: dict | None = None, *, restore: bool = False, presence: bool = True,
             **extra) -> str:
        """Attach authenticator `name` (unplugging the current one); returns its CDP id.

        `options`: PLATFORM, SECURITY_KEY or any addVirtualAuthenticator options, plus `extra`
        (e.g. defaultBackupEligibility/defaultBackupState=True for a synced-looking passkey).
        `restore=True` re-attaches an authenticator plugged before, with the credentials it held.
        """
        self.unplug()
        if restore:
            options, credentials = self.saved[name]
        else:
            assert options is not None, "a new authenticator needs options"
            options, credentials = {**options, **extra}, []
        options = {**options, "automaticPresenceSimulation": presence}
        authenticator_id = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]
        for credential in credentials:
            self.cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator_id, "credential": credential})
        self.current, self.current_id = name, authenticator_id
        self.saved[name] = (options, credentials)
        return authenticator_id

    def unplug(self) -> None:
        if self.current_id is None:
            return
        options, _ = self.saved[self.current]
        self.saved[self.current] = (options, self.credentials())
        self.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.current_id})
        self.current = self.current_id = None

    def credentials(self, name: str | None = None) -> list[dict]:
        """The credentials authenticator `name` holds (the attached one when None or attached)."""
        if name is None or name == self.current:
            assert self.current_id is not None, "no authenticator attached"
            return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.current_id})["credentials"]
        return self.saved[name][1]

    def add_credential(self, credential: dict) -> None:
        self.cdp.send("WebAuthn.addCredential", {"authenticatorId": self.current_id, "credential": credential})

    def set_presence(self, enabled: bool) -> None:
        self.cdp.send("WebAuthn.setAutomaticPresenceSimulation",
                      {"authenticatorId": self.current_id, "enabled": enabled})

    def close(self) -> None:
        try:
            self.unplug()
            self.cdp.send("WebAuthn.disable")
            self.cdp.detach()
        except Exception:
            pass  # the page is gone already


def b64url(standard_b64: str) -> str:
    """CDP's base64 (credentialId, userHandle) in the base64url-without-padding form the API uses."""
    return standard_b64.replace("+", "-").replace("/", "_").rstrip("=")


# --- e-mailed codes -------------------------------------------------------------------------------


def code_mails(mailsink, address: str = EMAIL) -> list:
    """Mails to `address` that carry a code (a code stands alone on its own line)."""
    return [m for m in mailsink.to(address) if re.search(r"^\d{6}\r?$", body(m), re.M)]


def new_code(mailsink, seen: int, timeout: float = 10.0) -> str:
    """The code of the first code mail after the `seen` ones already there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = code_mails(mailsink)
        if len(mails) > seen:
            return re.search(r"^(\d{6})\r?$", body(mails[seen]), re.M).group(1)
        time.sleep(0.05)
    raise AssertionError(f"no new code mail after {seen}")


def type_password_and_code(page, server, mailsink) -> None:
    """The legacy login typed into /login (password, then the e-mailed code), up to pressing the
    code page's button; where the page goes next is the caller's to wait for."""
    seen = len(code_mails(mailsink))
    page.goto(server.url + "/login")
    page.locator("input[name=customer_code]").fill(CUSTOMER_CODE)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(re.compile(r"/login/code$"))
    page.locator("input[name=code]").fill(new_code(mailsink, seen))
    page.locator("#code-submit").click()


def log_in_with_code(page, server, mailsink, *, lands_on: str = "/account") -> float:
    """type_password_and_code, then landed on `lands_on`; returns a time.monotonic() taken after
    the verification happened."""
    type_password_and_code(page, server, mailsink)
    page.wait_for_url(re.compile(re.escape(lands_on) + "$"))
    return time.monotonic()
