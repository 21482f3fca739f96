"""Text that someone else chose (security.md 39), as Tobira's e-mails show it.

A User-Agent header and a passkey's name are typed by whoever holds the browser, an attacker
included ("Tobira support: please call 0120-..."). A mail never prints the header; it names the
browser and system only with names from the lists below, which ua-parser's rules map a header
onto (its family can also be text captured from the header itself, e.g. "CallUsNowBot", which
is why an unlisted family is "unknown", never shown). A name is quoted, labelled as chosen by
whoever added the passkey, and stripped of what could make it look like our own lines.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import ua_parser

_BROWSERS = {  # ua-parser's user_agent.family -> the name a customer knows
    "Chrome": "Chrome", "Chrome Mobile": "Chrome", "Chrome Mobile iOS": "Chrome", "Chromium": "Chromium",
    "Safari": "Safari", "Mobile Safari": "Safari",
    "Firefox": "Firefox", "Firefox Mobile": "Firefox", "Firefox iOS": "Firefox",
    "Edge": "Edge", "Edge Mobile": "Edge", "Opera": "Opera", "Opera Mobile": "Opera",
    "Samsung Internet": "Samsung Internet", "Brave": "Brave", "Vivaldi": "Vivaldi",
    "Yandex Browser": "Yandex Browser", "DuckDuckGo Mobile": "DuckDuckGo", "IE": "Internet Explorer",
}
_SYSTEMS = {  # ua-parser's os.family -> ditto
    "Windows": "Windows", "Mac OS X": "Mac", "iOS": "iOS", "Android": "Android", "Chrome OS": "ChromeOS",
    "Linux": "Linux", "Ubuntu": "Linux", "Debian": "Linux", "Fedora": "Linux",
}
_APPLE_DEVICES = frozenset({"iPhone", "iPad", "iPod"})  # device.family on iOS: "Safari on iPhone"
_UNKNOWN_BROWSER = ("不明なブラウザ", "an unknown browser")
_UA_PARSED = 1024  # a real User-Agent is a few hundred characters; more only costs matching time


def browser_summary(user_agent: str | None, lang: str) -> str:
    """"Chrome on Windows" / "Windows の Chrome" from a User-Agent header, with nothing of the
    header's own text: names from _BROWSERS and _SYSTEMS only, else "an unknown browser"."""
    return _summary(user_agent[:_UA_PARSED] if user_agent else None, lang)


@lru_cache(maxsize=512)  # a login notice per login; customers have few browsers between them
def _summary(user_agent: str | None, lang: str) -> str:
    found = ua_parser.parse(user_agent) if user_agent else None
    browser = _BROWSERS.get(found.user_agent.family) if found and found.user_agent else None
    system = _SYSTEMS.get(found.os.family) if found and found.os else None
    if system == "iOS" and found is not None and found.device and found.device.family in _APPLE_DEVICES:
        system = found.device.family
    if lang == "en":
        what = browser or _UNKNOWN_BROWSER[1]
        return f"{what} on {system}" if system else what
    what = browser or _UNKNOWN_BROWSER[0]
    return f"{system} の{' ' if browser else ''}{what}" if system else what


_QUOTES = str.maketrans({"「": "『", "」": "』", '"': "'", "“": "‘", "”": "’"})  # no closing our quote early
_SHOWN = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi",
                    "Pf", "Po", "Sm", "Sc", "Sk", "So"})  # Unicode categories kept; Zs becomes one space


def shown_name(name: str | None, lang: str) -> str:
    """A passkey's name as a mail quotes it: 「name」 / “name” on one line. Control and format
    characters (bidi overrides U+202A-E, isolates U+2066-9, zero-width ones), line and paragraph
    separators and unassigned code points are dropped; any run of spaces becomes one; our quote
    marks inside are swapped for look-alikes; cut to the API's length limit."""
    from .passkeys import NAME_MAX  # here, not at the top: passkeys -> notices -> messages

    kept = "".join(c if unicodedata.category(c) in _SHOWN else " " if c.isspace() else "" for c in name or "")
    clean = " ".join(kept.translate(_QUOTES).split())
    if len(clean) > NAME_MAX:
        clean = clean[:NAME_MAX - 1] + "…"
    return f"“{clean}”" if lang == "en" else f"「{clean}」"
