"""The e-mails are put together from prepared parts (messages.PreparedText): the same message as
the plain email-package construction they replaced, in every form it leaves the server as."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, message_from_string
from email.errors import HeaderParseError
from email.generator import BytesGenerator
from email.header import Header
from email.mime.text import MIMEText
from email.policy import SMTP, compat32, default
from io import BytesIO

import pytest
from aiosmtplib.email import flatten_message

from server import messages
from server.config import JST, SmtpSettings
from server.mail import SmtpMailer
from mailsink import MailSink, body

DATE = "Sun, 22 Nov 2026 01:30:15 -0000"
WHEN = datetime(2026, 11, 22, 1, 30, 15, tzinfo=timezone.utc)
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
      "Safari/537.36")


# --- the construction this replaced, verbatim ---------------------------------------------------

def old_jst(when: datetime, lang: str) -> str:
    local = when.astimezone(JST)
    if lang == "en":
        return local.strftime("%Y-%m-%d %H:%M (Japan time)")
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}（日本時間）"


def old_message(*, sender: str, to: str, subject: str, body: str, rp_name: str):
    msg = MIMEText(body, "plain", "utf-8")
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = Header(f"[{rp_name}] {subject}", "utf-8")
    msg["Date"] = messages.formatdate(localtime=False)
    msg["Message-ID"] = messages.make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    msg["Auto-Submitted"] = "auto-generated"
    return msg


@pytest.fixture(autouse=True)
def fixed_date_and_id(monkeypatch):
    """The only values that differ from one message to the next, pinned (same calls, same arguments)."""
    monkeypatch.setattr(messages, "formatdate", lambda localtime: DATE)
    monkeypatch.setattr(messages, "make_msgid", lambda domain: f"<179531101546.14035.13338320177338604235@{domain}>")


def both(build, **kw):
    """(new, old): the same builder, with today's parts and with the old construction."""
    new = build(**kw)
    return new, old_only(build, **kw)


def old_only(build, **kw):
    saved = messages._message, messages.jst
    messages._message, messages.jst = old_message, old_jst
    try:
        return build(**kw)
    finally:
        messages._message, messages.jst = saved


def base(**kw):
    return {"sender": "no-reply@example.com", "to": "taro@example.com", "rp_name": "Tobira Bank", **kw}


def kinds(lang: str, **over):
    """Every builder, with every branch of its wording."""
    return [
        (messages.code_mail, base(lang=lang, code="123456", ttl=600, purpose="login", **over)),
        (messages.code_mail, base(lang=lang, code="654321", ttl=59, purpose="step_up", **over)),
        (messages.login_mail, base(lang=lang, when=WHEN, method="passkey", ip="203.0.113.5", browser=UA, **over)),
        (messages.login_mail, base(lang=lang, when=WHEN, method="email_code", ip=None, browser=None, **over)),
        (messages.login_mail, base(lang=lang, when=WHEN, method="trusted_device", ip="2001:db8::1", browser="x",
                                   **over)),
        (messages.locked_mail, base(lang=lang, when=WHEN, ip="203.0.113.5", **over)),
        (messages.passkey_mail, base(lang=lang, when=WHEN, added=True, name="iPhone", provider="iCloud Keychain",
                                     ip="203.0.113.5", **over)),
        (messages.passkey_mail, base(lang=lang, when=WHEN, added=False, name="仕事用のキー", provider=None, ip=None,
                                     **over)),
        (messages.passkey_mail, base(lang=lang, when=WHEN, added=True, name="Tobira support: call 0120\n\u202e",
                                     provider=None, ip=None, hold_until=WHEN + timedelta(days=1), **over)),
        (messages.clone_mail, base(lang=lang, when=WHEN, name="YubiKey", ip="203.0.113.5", **over)),
        (messages.reset_mail, base(lang=lang, when=WHEN, count=3, **over)),
        (messages.email_changed_mail, base(lang=lang, when=WHEN, new_address="hanako@example.net", ip=None, **over)),
    ]


CASES = [pytest.param(build, kw, id=f"{build.__name__}-{kw['lang']}-{i}")
         for lang in ("ja", "en") for i, (build, kw) in enumerate(kinds(lang))]


def decoded(msg) -> dict:
    """What a mail client makes of a message."""
    return {"headers": [(k, str(v)) for k, v in msg.items()], "body": msg.get_content(),
            "type": msg.get_content_type(), "charset": msg.get_content_charset(),
            "cte": msg["Content-Transfer-Encoding"]}


def outputs(msg) -> dict:
    """Every form a message leaves the server as: the queued text, the dev mail folder's bytes, and
    what aiosmtplib's send_message hands the SMTP server (with and without 8BITMIME)."""
    return {"as_string": msg.as_string().encode("ascii"), "bytes": bytes(msg),
            "smtp": flatten_message(msg), "smtp_7bit": flatten_message(msg, cte_type="7bit")}


def assert_valid_rfc5322(raw: bytes) -> None:
    assert raw.isascii(), "no raw non-ASCII anywhere: encoded-words in headers, base64 body"
    head = raw.split(b"\n\n", 1)[0]
    for line in raw.split(b"\n"):
        assert len(line.rstrip(b"\r")) <= 998, line[:80]
    for line in head.split(b"\n"):
        assert line[:1] in (b" ", b"\t") or b":" in line, f"a header line that is neither header nor fold: {line!r}"


# --- the same message -----------------------------------------------------------------------------

@pytest.mark.parametrize("build, kw", CASES)
def test_same_message_as_the_old_construction(build, kw):
    new, old = both(build, **kw)
    assert isinstance(new, MIMEText)
    # Byte for byte, in every form it is sent in (Date and Message-ID pinned above).
    assert outputs(new) == outputs(old)
    # And as a mail client reads it.
    for raw in outputs(new).values():
        assert_valid_rfc5322(raw)
        assert decoded(message_from_bytes(raw, policy=default)) == decoded(
            message_from_string(old.as_string(), policy=default))
    parsed = message_from_string(new.as_string(), policy=default)
    assert (parsed.get_content_type(), parsed.get_content_charset(), parsed["Content-Transfer-Encoding"]) == \
        ("text/plain", "utf-8", "base64")
    assert [k for k, _ in parsed.items()] == ["Content-Type", "MIME-Version", "Content-Transfer-Encoding", "From",
                                             "To", "Subject", "Date", "Message-ID", "Auto-Submitted"]
    # The object itself answers like the old one (DevMailFolder logs msg["To"] and str(msg["Subject"])).
    assert [(k, str(v), type(v)) for k, v in new.items()] == [(k, str(v), type(v)) for k, v in old.items()]
    assert new.get_payload() == old.get_payload() and new.get_payload(decode=True) == old.get_payload(decode=True)
    assert (new.get_charset(), new.get_params(), new.get_content_type()) == \
        (old.get_charset(), old.get_params(), old.get_content_type())


def test_login_notice_body_is_the_wording_as_before():
    new, _ = both(messages.login_mail, **base(lang="ja", when=WHEN, method="passkey", ip="203.0.113.5", browser=UA))
    text = message_from_string(new.as_string(), policy=default).get_content()
    assert text.startswith("お客様のアカウントにログインがありました。\n\n日時：2026年11月22日 10:30（日本時間）\n"
                           "方法：パスキー\n接続元：203.0.113.5\n")
    assert "ブラウザ：Windows の Chrome\n" in text and "Mozilla" not in text and "537.36" not in text
    new, _ = both(messages.login_mail, **base(lang="en", when=WHEN, method="passkey", ip=None, browser=None))
    text = message_from_string(new.as_string(), policy=default).get_content()
    assert ("When:    2026-11-22 10:30 (Japan time)\nHow:     passkey\nFrom:    unknown\n"
            "Browser: an unknown browser\n") in text


def test_date_and_message_id_are_new_for_each_message(monkeypatch):
    monkeypatch.undo()  # the real formatdate and make_msgid
    kw = base(lang="en", when=WHEN, method="passkey", ip=None, browser=None)
    a, b = (message_from_string(messages.login_mail(**kw).as_string(), policy=default) for _ in range(2))
    assert a["Message-ID"] != b["Message-ID"] and a["Message-ID"].endswith("@example.com>")
    sent = a["Date"].datetime.replace(tzinfo=timezone.utc)  # "-0000": UTC, parsed as naive
    assert abs(sent - datetime.now(timezone.utc)) < timedelta(minutes=1)


# --- long and non-ASCII values ----------------------------------------------------------------

LONG = [
    pytest.param({"rp_name": "とびら証券株式会社オンライン取引サービス" * 40}, id="long-japanese-rp_name"),
    pytest.param({"rp_name": "Tobira Securities Online Trading Service " * 30}, id="long-ascii-rp_name"),
    pytest.param({"rp_name": "Tobira" * 200}, id="long-unbroken-rp_name"),
    pytest.param({"to": "たろう.やまだ@example.jp", "rp_name": "とびら銀行"}, id="non-ascii-recipient"),
    pytest.param({"to": "t" * 64 + "@" + ".".join(["sub" + "d" * 59] * 3) + ".example.com"}, id="longest-recipient"),
    pytest.param({"sender": "とびら銀行 <no-reply@example.jp>", "rp_name": "とびら銀行"}, id="non-ascii-sender"),
    pytest.param({"sender": "Tobira Bank Customer Notifications Department <no-reply@notifications.example.com>"},
                 id="long-sender"),
]


@pytest.mark.parametrize("over", LONG)
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_long_and_non_ascii_values_fold_into_valid_lines(over, lang):
    long_browser = "Mozilla/5.0 (ブラウザ; テスト) " + "AppleWebKit/537.36 (KHTML, like Gecko) " * 60
    for build, kw in kinds(lang, **{k: v for k, v in over.items() if k != "sender"}):
        kw.update(over)
        if build is messages.login_mail:
            kw["browser"] = long_browser
        new, old = both(build, **kw)
        new_out, old_out = outputs(new), outputs(old)
        for form, raw in new_out.items():
            assert_valid_rfc5322(raw)
            assert decoded(message_from_bytes(raw, policy=default)) == \
                decoded(message_from_bytes(old_out[form], policy=default)), form
        # bytes() and SMTP always folded at 78: unchanged. as_string() (the queued notices) writes
        # each header on one line, as before, unless that line would pass 998 characters: the old
        # one did, making an invalid message; it now folds that header as bytes() does.
        assert {k: v for k, v in new_out.items() if k != "as_string"} == \
            {k: v for k, v in old_out.items() if k != "as_string"}
        if all(len(line) <= 998 for line in old.as_string().split("\n")):
            assert new.as_string() == old.as_string()
        else:
            assert "rp_name" in over and new.as_string() == bytes(old).decode("ascii")


# --- header injection -------------------------------------------------------------------------

INJECT = ["X\r\nBcc: evil@example.com", "X\nBcc: evil@example.com", "X\r\n\r\nInjected body", "X\rBcc: e@x.jp",
          "X\n X-Evil: 1", "X\x0bBcc: e@x.jp", "X\u2028Bcc: e@x.jp", "X\x85Bcc: e@x.jp"]
HEADERS = {"content-type", "mime-version", "content-transfer-encoding", "from", "to", "subject", "date", "message-id",
           "auto-submitted"}


@pytest.mark.parametrize("evil", INJECT)
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_line_breaks_in_rp_name_or_browser_stay_inside_their_value(evil, lang):
    """rp_name goes into an RFC 2047 encoded Subject, the browser into the base64 body: as before."""
    for build, kw in kinds(lang, rp_name=evil):
        if build is messages.login_mail:
            kw["browser"] = evil
        new, old = both(build, **kw)
        assert outputs(new) == outputs(old)
        for raw in outputs(new).values():
            parsed = message_from_bytes(raw, policy=default)
            assert {k.lower() for k in parsed.keys()} == HEADERS and not parsed.defects
            assert parsed["Subject"].startswith("[X") and "Bcc" not in parsed and "X-Evil" not in parsed
            if build is messages.login_mail:  # and the browser line names no browser from it
                assert "ブラウザ：不明なブラウザ\n" in parsed.get_content() or \
                    "Browser: an unknown browser\n" in parsed.get_content()
                assert "Bcc" not in parsed.get_content() and "Evil" not in parsed.get_content()


@pytest.mark.parametrize("evil", INJECT + ["a@example.com\nfoo bar", "a@example.com\r\n"])
@pytest.mark.parametrize("field", ["to", "sender"])
def test_a_line_break_in_an_address_is_refused(evil, field):
    """The old construction raised on "\\nName:" only, and let "\\nfoo", a blank line (the end of the
    headers) or a continuation through; now any line break in an address refuses the message
    when it is made."""
    for build, kw in kinds("ja", **{field: evil.replace("X", "a@example.com")}):
        with pytest.raises(HeaderParseError):
            build(**kw)


def test_the_old_construction_was_not_safer():
    """What the old one did with the same addresses (so the refusal above is at least as safe)."""
    kw = base(lang="en", when=WHEN, method="passkey", ip=None, browser=None)
    with pytest.raises(HeaderParseError):
        old_only(messages.login_mail, **{**kw, "to": "a@example.com\r\nBcc: evil@example.com"}).as_string()
    old = old_only(messages.login_mail, **{**kw, "to": "a@example.com\nfoo bar"})
    assert "\nTo: a@example.com\nfoo bar\n" in old.as_string()  # a line that is no header


# --- the parts ----------------------------------------------------------------------------------

def test_header_fast_path_is_what_compat32_writes():
    one_line = compat32.clone(max_line_length=0)
    rng = random.Random(5322)
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + [" "] * 20 + [";", ","] * 4 + ["\t", "\x7f"]
    values = ["", " ", "  ", "a ", " a", "a  b", "a" * 72, "a" * 73, "a " * 40, DATE,
              "<179531101546.14035.13338320177338604235@example.com>"]
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90))) for _ in range(3000)]
    for value in values:
        for name in ("To", "Date", "Message-ID"):
            assert messages._header(name, value, True) == compat32.fold(name, value)[:-1], (name, value)
            assert messages._header(name, value, False) == one_line.fold(name, value)[:-1], (name, value)


def test_base64_lines_are_base64mime_body_encode():
    from email.base64mime import body_encode
    data = bytes(range(256)) * 3
    for n in list(range(0, 200)) + [569, 570, 571, 768]:
        assert messages._base64_lines(data[:n]) == body_encode(data[:n]), n


def test_jst_is_the_old_strftime_text():
    rng = random.Random(9)
    start = datetime(1970, 1, 1, tzinfo=timezone.utc)
    samples = [start + timedelta(seconds=rng.randrange(0, 130 * 365 * 86400)) for _ in range(3000)]
    samples += [datetime(2026, 12, 31, 14, 59, tzinfo=timezone.utc), datetime(2026, 12, 31, 15, 0, tzinfo=timezone.utc),
                datetime(2027, 1, 1, 9, 5, tzinfo=JST), datetime(1000, 1, 1, 0, 0, tzinfo=timezone.utc)]
    for when in samples:
        for lang in ("ja", "en"):
            assert messages.jst(when, lang) == old_jst(when, lang), when


def test_the_prepared_parts_are_used_not_the_header_folding(monkeypatch):
    """The point of it all: once a kind of message has been made, rendering one more folds nothing."""
    kw = base(lang="ja", when=WHEN, method="passkey", ip="203.0.113.5", browser=UA)
    messages.login_mail(**kw).as_string()

    def folding(*args, **kwargs):
        raise AssertionError("email.header folding on the prepared path")
    monkeypatch.setattr(Header, "encode", folding)
    msg = messages.login_mail(**kw)
    msg.as_string(), bytes(msg)
    msg["X-Extra"] = "1"  # a changed message takes the ordinary way, which folds
    with pytest.raises(AssertionError, match="folding"):
        msg.as_string()


def test_a_changed_message_is_flattened_the_ordinary_way():
    kw = base(lang="ja", when=WHEN, method="passkey", ip=None, browser=None)
    for change in (lambda m: m.__setitem__("X-Extra", "1"), lambda m: m.__delitem__("Auto-Submitted"),
                   lambda m: m.replace_header("To", "hanako@example.com"),
                   lambda m: m.set_payload("aGVsbG8=\n")):
        new, old = both(messages.login_mail, **kw)
        change(new), change(old)
        assert outputs(new) == outputs(old)


def test_other_policies_and_line_endings_match_too():
    new, old = both(messages.code_mail, **base(lang="ja", code="123456", ttl=600, purpose="login"))
    for policy in (compat32.clone(linesep="\r\n"), compat32.clone(max_line_length=40),
                   compat32.clone(cte_type="7bit", linesep="\r\n")):
        out = []
        for msg in (new, old):
            buf = BytesIO()
            BytesGenerator(buf, policy=policy).flatten(msg)
            out.append(buf.getvalue())
        assert out[0] == out[1], policy
    assert new.as_string(maxheaderlen=40) == old.as_string(maxheaderlen=40)
    assert new.as_string(unixfrom=True).split("\n", 1)[1] == old.as_string(unixfrom=True).split("\n", 1)[1]
    for msg in (new, old):  # as before: a compat32 Header is not for the new policies
        with pytest.raises(AttributeError):
            BytesGenerator(BytesIO(), policy=SMTP).flatten(msg)


def test_a_code_mail_goes_through_smtp(monkeypatch):
    sink = MailSink().start()
    try:
        new = messages.code_mail(**base(lang="en", code="246810", ttl=600, purpose="login"))
        asyncio.run(SmtpMailer(SmtpSettings("127.0.0.1", sink.port, "plain")).send([new]))
        got = sink.wait_for(lambda m: True)
        assert str(got["Subject"]) == "[Tobira Bank] Your confirmation code" and got["To"] == "taro@example.com"
        assert "\n246810\n" in body(got) and got.get_content_charset() == "utf-8"
    finally:
        sink.stop()


# --- what someone else typed is not shown as our words (security.md 39) -------------------------

def content(msg) -> str:
    return message_from_string(msg.as_string(), policy=default).get_content()


IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")
BROWSERS = [
    (UA, "Windows の Chrome", "Chrome on Windows"),
    (IPHONE, "iPhone の Safari", "Safari on iPhone"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Linux の Firefox", "Firefox on Linux"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
     "Safari/605.1.15", "Mac の Safari", "Safari on Mac"),
    (UA + " Edg/131.0.0.0", "Windows の Edge", "Edge on Windows"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
     "Safari/537.36", "Android の Chrome", "Chrome on Android"),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 "
     "Mobile/15E148 Safari/604.1", "iPad の Chrome", "Chrome on iPad"),
]


@pytest.mark.parametrize("user_agent, ja, en", BROWSERS, ids=[en for _, _, en in BROWSERS])
def test_the_login_mail_names_browser_and_system_not_the_header(user_agent, ja, en):
    for lang, summary, label in (("ja", ja, "ブラウザ："), ("en", en, "Browser: ")):
        text = content(messages.login_mail(**base(lang=lang, when=WHEN, method="passkey", ip=None,
                                                  browser=user_agent)))
        assert f"\n{label}{summary}\n" in text
        assert "Mozilla" not in text and "KHTML" not in text and "/5.0" not in text


# Each of these is a User-Agent an attacker sends from the browser that logs in (or adds a passkey).
HOSTILE_UAS = [
    pytest.param(None, None, id="none"),
    pytest.param("", None, id="empty"),
    pytest.param("Tobira support: call 0120-000-000 at once", None, id="a-sentence"),
    # ua-parser's own answer for this family is the attacker's text ("TobiraSupportCall0120Bot"):
    pytest.param("Mozilla/5.0 (compatible; TobiraSupportCall0120Bot/1.0)", None, id="a-bot-family"),
    pytest.param("TobiraSupportCall0120/99.0 (Windows NT 10.0)", "Windows", id="an-unknown-product"),
    pytest.param("Mozilla/5.0 (Windows NT 10.0; Tobira support 0120) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/131.0.0.0 Safari/537.36 Call-0120-Now/1.0", "Windows", id="chrome-with-extras"),
    pytest.param("Mozilla/5.0 (Linux; Android 14; TobiraSupport 0120 Build/X) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/131.0.0.0 Mobile Safari/537.36", "Android", id="a-device-model"),
    pytest.param("\u202eTobira\x00 0120\r\nSubject: x", None, id="controls"),
    pytest.param("Tobira 0120 " * 20000, None, id="huge"),
]


@pytest.mark.parametrize("user_agent, system", HOSTILE_UAS)
def test_no_text_of_a_hostile_user_agent_reaches_the_mail(user_agent, system):
    for lang in ("ja", "en"):
        summary = messages.browser_summary(user_agent, lang)
        # Made of known names only: the neutral word, or a known browser and system.
        assert "Tobira" not in summary and "0120" not in summary and "Call" not in summary
        assert len(summary) <= 40 and summary.isprintable()
        text = content(messages.login_mail(**base(lang=lang, when=WHEN, method="passkey", ip=None,
                                                  browser=user_agent)))
        assert "Tobira" not in text.replace("[Tobira Bank]", "") and "0120" not in text
    if system is None:
        assert messages.browser_summary(user_agent, "ja") == "不明なブラウザ"
        assert messages.browser_summary(user_agent, "en") == "an unknown browser"
    else:  # the system is a known name; the browser is what we know of it (Chrome) or nothing
        assert messages.browser_summary(user_agent, "en").endswith(f" on {system}")
        assert messages.browser_summary(user_agent, "ja").startswith(f"{system} の")


def test_ua_parser_alone_would_have_echoed_the_attacker():
    """Why browser_summary keeps to its own lists: the library's family can be the header's text."""
    import ua_parser
    assert ua_parser.parse("Mozilla/5.0 (compatible; TobiraSupportCall0120Bot/1.0)").user_agent.family == \
        "TobiraSupportCall0120Bot"
    assert messages.browser_summary("Mozilla/5.0 (compatible; TobiraSupportCall0120Bot/1.0)", "en") == \
        "an unknown browser"


HOSTILE_NAME = "Tobira support: call 0120-xxx\nnew line"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200e\u200f\ufeff\u061c"
LABEL = {"ja": "名前（登録・変更時に付けられた名前）：", "en": "Name (chosen by whoever added or renamed it): "}


def name_line(text: str, lang: str) -> str:
    lines = [line for line in text.split("\n") if line.startswith(LABEL[lang])]
    assert len(lines) == 1, text
    return lines[0][len(LABEL[lang]):]


@pytest.mark.parametrize("added", [True, False], ids=["added", "removed"])
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_passkey_name_is_quoted_as_the_adders_words(lang, added):
    name = f"{HOSTILE_NAME}\r\n\u2028{BIDI}\x00\x1b[31m\t end"
    text = content(messages.passkey_mail(**base(lang=lang, when=WHEN, added=added, name=name, provider=None,
                                                ip="203.0.113.5")))
    quoted = "「Tobira support: call 0120-xxx new line [31m end」" if lang == "ja" else \
        "“Tobira support: call 0120-xxx new line [31m end”"
    assert name_line(text, lang) == quoted
    # Every line of the mail is ours: the name starts none of them and brings no line of its own.
    assert not any(line.startswith(("Tobira", "new line", "end", " end")) for line in text.split("\n"))
    assert not any(c in text for c in BIDI + "\x00\x1b\r\u2028")
    assert ("当社からのご案内ではありません" if lang == "ja" else "not a message from us") in text


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_name_cannot_close_our_quote_or_run_on(lang):
    kw = base(lang=lang, when=WHEN, added=True, provider=None, ip=None)
    for name in ("本物」 当社サポートへお電話ください「", 'real" - call support at 0120 "', "x“y”z"):
        quoted = name_line(content(messages.passkey_mail(**kw, name=name)), lang)
        open_, close = ("「", "」") if lang == "ja" else ("“", "”")
        assert quoted.startswith(open_) and quoted.endswith(close)
        inner = quoted[1:-1]
        assert not any(q in inner for q in "「」\"“”"), inner
    from server.passkeys import NAME_MAX
    quoted = name_line(content(messages.passkey_mail(**kw, name="あ" * 1000)), lang)
    assert len(quoted) == NAME_MAX + 2 and quoted[-2] == "…"
    assert name_line(content(messages.passkey_mail(**kw, name="\ud800\u202e")), lang) in ("「」", "“”")


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_clone_mail_quotes_the_name_cleaned_too(lang):
    text = content(messages.clone_mail(**base(lang=lang, when=WHEN, name=HOSTILE_NAME + "\u202e", ip=None)))
    assert ("「Tobira support: call 0120-xxx new line」" if lang == "ja"
            else "“Tobira support: call 0120-xxx new line”") in text
    assert "\u202e" not in text and not any(line.startswith("new line") for line in text.split("\n"))


HOLD = datetime(2026, 11, 22, 15, 5, tzinfo=timezone.utc)  # 00:05 on the 23rd in Tokyo


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_held_passkey_mail_says_until_when_and_to_phone_at_once(lang):
    kw = base(lang=lang, when=WHEN, added=True, name="iPhone", provider="iCloud Keychain", ip="203.0.113.5")
    held, plain = content(messages.passkey_mail(**kw, hold_until=HOLD)), content(messages.passkey_mail(**kw))
    if lang == "ja":
        hold = "この新しいパスキーは、2026年11月23日 00:05（日本時間）まで、お取引やご出金には使えません。"
        call = "このパスキーの登録にお心当たりがない場合は、ただちにお客様サポートへお電話でご連絡ください"
    else:
        hold = "Until 2026-11-23 00:05 (Japan time) this new passkey cannot be used for trading or withdrawals."
        call = "If you did not add it, phone our customer support at once"
    assert hold in held and call in held
    assert hold not in plain and call not in plain and "00:05" not in plain
    removed = content(messages.passkey_mail(**{**kw, "added": False}, hold_until=HOLD))
    assert "00:05" not in removed, "a removed passkey holds nothing"
    for text in (held, plain, removed):
        assert "http" not in text.lower() and "://" not in text and "www." not in text.lower()


def test_notices_passkey_added_hands_the_hold_to_the_mail(monkeypatch):
    from types import SimpleNamespace

    from server import notices
    from server.context import Client

    queued = []
    monkeypatch.setattr(notices.store, "add_event", lambda db, **kw: None)
    monkeypatch.setattr(notices.store_outbox, "enqueue_mail", lambda db, **kw: queued.append(kw))
    ctx = SimpleNamespace(settings=SimpleNamespace(mail_from="no-reply@example.com", rp_name="Tobira"),
                          clock=lambda: WHEN)
    user = SimpleNamespace(id=1, email="taro@example.com", customer_code="TARO1234")
    client = Client(ip="203.0.113.5", user_agent=IPHONE, lang="en")
    notices.passkey_added(None, ctx, user, "iPhone", None, client, WHEN, hold_until=HOLD)
    notices.passkey_added(None, ctx, user, "iPhone", None, client, WHEN)
    held, plain = (message_from_string(q["message"], policy=default).get_content() for q in queued)
    assert "Until 2026-11-23 00:05 (Japan time) this new passkey cannot be used" in held
    assert "cannot be used" not in plain
