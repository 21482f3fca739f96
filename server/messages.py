"""The e-mails Tobira sends, in Japanese or English.

Rules for every message (contract, "E-mail"): UTF-8 text/plain; a code stands alone on its own
line; no link to a login or password page (phishing mails imitate exactly those).
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from binascii import b2a_base64
from datetime import datetime
from email.charset import Charset
from email.errors import HeaderParseError
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate
from functools import lru_cache

from .config import JST
from .untrusted import browser_summary, shown_name

METHODS = {
    "email_code": ("パスワードとメールの確認コード", "password and an e-mailed code"),
    "trusted_device": ("パスワードと記憶済みのPC（確認コードなし）", "password on a remembered PC (no code)"),
    "passkey": ("パスキー", "passkey"),
}

_NOT_YOU = (
    "お心当たりがない場合は、第三者がお客様のパスワードを知っている可能性があります。\n"
    "ただちにお客様サポートへお電話でご連絡ください（連絡先は当社ウェブサイトでご確認ください）。\n"
    "当社からのメールに、ログインページやパスワード変更ページへのリンクが含まれることはありません。",
    "If this was not you, someone may know your password.\n"
    "Please phone our customer support at once (see our website for the number).\n"
    "Our e-mails never contain links to a login or password page.",
)


def mask_email(email: str) -> str:
    """t***@example.com: enough for the customer to recognise, little for someone looking over a shoulder."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def jst(when: datetime, lang: str) -> str:
    local = when.astimezone(JST)
    hh_mm = f"{local.hour:02d}:{local.minute:02d}"  # what strftime's %H:%M gives, for a third of its cost
    if lang == "en":
        return f"{local.year}-{local.month:02d}-{local.day:02d} {hh_mm} (Japan time)"  # = "%Y-%m-%d %H:%M"
    return f"{local.year}年{local.month}月{local.day}日 {hh_mm}（日本時間）"


# --- the message itself -------------------------------------------------------------------
#
# What goes out is exactly MIMEText(body, "plain", "utf-8") with From, To, an RFC 2047 Subject
# (Header(..., "utf-8")), Date, Message-ID and Auto-Submitted. Flattening such a message with the
# email package costs ~150 µs, nearly all of it email.header folding each of its nine headers
# again on every message; a login notice is made on every login. So the header lines that are the
# same for every message of a kind are folded once (cached), the few per-message values (To,
# Date, Message-ID) are written as they are when they are printable ASCII that fits on a line
# (else the email package folds them, as before), and the body is base64 in 76-character lines as
# email.base64mime makes it. The result is still a complete MIMEText with the same headers and
# payload; tests/test_messages.py compares it with the old construction.

_UTF8 = Charset("utf-8")
_ONE_LINE = compat32.clone(max_line_length=0)  # Message.as_string(): headers are not folded
_FOLD_AT = 78  # compat32's own length: bytes(msg), and aiosmtplib's BytesGenerator(policy=compat32)
_MAX_LINE = 998  # RFC 5322 §2.1.1: a longer unfolded header is folded at _FOLD_AT instead
_LINE_BREAK = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")  # all of str.splitlines()'s


_THIS_PROCESS = secrets.token_hex(8)
_SERIAL = itertools.count()


def make_msgid(*, domain: str) -> str:
    """A unique Message-ID like email.utils.make_msgid's (time, a per-process random part, a serial
    number), without its system call and random draw per message."""
    return f"<{int(time.time() * 100)}.{_THIS_PROCESS}.{next(_SERIAL)}@{domain}>"


def _header(name: str, value: str | Header, folded: bool) -> str:
    """'Name: value' exactly as compat32 writes it (continuation lines joined by \\n): folded at 78
    characters, or on one line as Message.as_string() does (folded after all past 998)."""
    if value.__class__ is str and len(name) + 2 + len(value) <= _FOLD_AT and value.isascii() and value.isprintable():
        return f"{name}: {value}"  # what email.header makes of printable ASCII that needs no folding
    if isinstance(value, str) and _LINE_BREAK.search(value):
        # The email package would write it as a line of its own (or raise on "\nName:"): refuse.
        raise HeaderParseError(f"line break in the {name} header")
    # typeshed says fold(name, value: str), but compat32 folds a Header value as one (_fold's isinstance).
    line = (compat32 if folded else _ONE_LINE).fold(name, value)[:-1]  # type: ignore[arg-type]
    if not folded and len(line) > _MAX_LINE:
        line = compat32.fold(name, value)[:-1]  # type: ignore[arg-type]  # a Header value, as above
    return line


def _base64_lines(data: bytes) -> str:
    """email.base64mime.body_encode(data): base64 in lines of 76 characters (57 bytes), each ending in \\n."""
    b64 = b2a_base64(data, newline=False).decode("ascii")
    return "".join([b64[i:i + 76] + "\n" for i in range(0, len(b64), 76)])


@lru_cache(maxsize=256)
def _kind(sender: str, subject: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The header lines shared by every message of one kind, as (one-line, folded) pairs: the
    block up to From, and Subject."""
    head = 'Content-Type: text/plain; charset="utf-8"\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\n'
    return ((head + _header("From", sender, False), head + _header("From", sender, True)),
            (_header("Subject", Header(subject, _UTF8), False), _header("Subject", Header(subject, _UTF8), True)))


class PreparedText(MIMEText):
    """A MIMEText(body, "plain", "utf-8") message whose flattened forms as_string() (queued mail)
    and bytes() (the dev mail folder) are put together from prepared parts; an email generator (as
    aiosmtplib uses for code mails) writes it the ordinary way. Changing the message through the Message API (msg[...] =, del, set_payload ...) makes
    it flatten the ordinary way; changing a header's value object in place is not supported."""

    def __init__(self, *, sender: str, to: str, subject: str, body: str) -> None:
        for name, address in (("From", sender), ("To", to)):
            if _LINE_BREAK.search(address):  # the old construction let most of these through
                raise HeaderParseError(f"line break in the {name} header")
        Message.__init__(self)  # MIMEText's own __init__ would encode and fold what is already done
        self._shared = _kind(sender, subject)
        self._payload = _base64_lines(body.encode("utf-8"))
        self._charset = _UTF8
        self._headers: list[tuple[str, str | Header]] = [
            ("Content-Type", 'text/plain; charset="utf-8"'), ("MIME-Version", "1.0"),
            ("Content-Transfer-Encoding", "base64"), ("From", sender), ("To", to),
            ("Subject", Header(subject, _UTF8)), ("Date", formatdate(localtime=False)),
            ("Message-ID", make_msgid(domain=sender.rpartition("@")[2] or "localhost")),
            ("Auto-Submitted", "auto-generated"),
        ]
        self._prepared = (self._headers.copy(), self._payload)

    def _untouched(self) -> bool:
        headers, payload = self._prepared
        return self._payload is payload and self._headers == headers

    def _header_block(self, folded: bool) -> str:
        i = 1 if folded else 0
        head, subject = self._shared
        h = self._headers  # as prepared (see _untouched)
        return (f"{head[i]}\n{_header('To', h[4][1], folded)}\n{subject[i]}\n{_header('Date', h[6][1], folded)}\n"
                f"{_header('Message-ID', h[7][1], folded)}\nAuto-Submitted: auto-generated\n")

    def as_string(self, unixfrom: bool = False, maxheaderlen: int = 0, policy=None) -> str:
        if unixfrom or maxheaderlen or policy is not None or self.policy is not compat32 or not self._untouched():
            return super().as_string(unixfrom, maxheaderlen, policy)
        return f"{self._header_block(False)}\n{self._payload}"

    def as_bytes(self, unixfrom: bool = False, policy=None) -> bytes:
        if unixfrom or policy is not None or self.policy is not compat32 or not self._untouched():
            return super().as_bytes(unixfrom, policy)
        return f"{self._header_block(True)}\n{self._payload}".encode("ascii")


def _message(*, sender: str, to: str, subject: str, body: str, rp_name: str) -> Message:
    return PreparedText(sender=sender, to=to, subject=f"[{rp_name}] {subject}", body=body)


def code_mail(*, sender: str, to: str, rp_name: str, lang: str, code: str, ttl: int, purpose: str) -> Message:
    minutes = max(1, ttl // 60)
    if lang == "en":
        what = "log in" if purpose == "login" else "confirm it is you"
        subject = "Your confirmation code"
        body = (
            f"Enter this code on the page to {what}:\n\n{code}\n\n"
            f"It works once, for {minutes} minutes. Never tell it to anyone, including our staff.\n\n"
            "If you did not ask for it, someone may know your password: please phone our customer support."
        )
    else:
        what = "ログイン" if purpose == "login" else "ご本人確認"
        subject = "確認コードのお知らせ"
        body = (
            f"{what}の画面で次の確認コードを入力してください。\n\n{code}\n\n"
            f"有効期限は{minutes}分、一度だけ使えます。当社の社員を含め、誰にも教えないでください。\n\n"
            "お心当たりがない場合は、第三者がお客様のパスワードを知っている可能性があります。お客様サポートへお電話でご連絡ください。"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def login_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, method: str,
               ip: str | None, browser: str | None) -> Message:
    """`browser` is the raw User-Agent header; the mail shows only browser_summary() of it."""
    ja_method, en_method = METHODS.get(method, (method, method))
    if lang == "en":
        subject = "New login to your account"
        body = (
            "Your account was just logged in to.\n\n"
            f"When:    {jst(when, 'en')}\n"
            f"How:     {en_method}\n"
            f"From:    {ip or 'unknown'}\n"
            f"Browser: {browser_summary(browser, 'en')}\n\n"
            f"If this was you, there is nothing to do.\n\n{_NOT_YOU[1]}"
        )
    else:
        subject = "ログインのお知らせ"
        body = (
            "お客様のアカウントにログインがありました。\n\n"
            f"日時：{jst(when, 'ja')}\n"
            f"方法：{ja_method}\n"
            f"接続元：{ip or '不明'}\n"
            f"ブラウザ：{browser_summary(browser, 'ja')}\n\n"
            f"お客様ご自身によるログインであれば、対応は不要です。\n\n{_NOT_YOU[0]}"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def locked_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, ip: str | None) -> Message:
    if lang == "en":
        subject = "Password sign-in to your account has been locked"
        body = (
            f"After repeated failed logins, sign-in with your password was locked at {jst(when, 'en')} "
            f"(last attempt from {ip or 'unknown'}). From now on a password is not accepted, "
            "even the right one.\n\n"
            "If you have a passkey, you can still log in with it, and lift the lock yourself on your "
            "account page. Otherwise, please phone our customer support; we will confirm it is you.\n\n"
            "If the failed logins were not yours, someone may be trying to guess your password.\n"
            "Our e-mails never contain links to a login or password page."
        )
    else:
        subject = "パスワードでのログインをロックしました"
        body = (
            f"ログインの失敗が続いたため、{jst(when, 'ja')}にお客様のパスワードでのログインをロックしました"
            f"（最後の試行の接続元：{ip or '不明'}）。以後、正しいパスワードでもログインできません。\n\n"
            "パスキーをお持ちの場合は、パスキーでログインでき、マイアカウントのページからご自身でロックを解除できます。"
            "パスキーをお持ちでない場合は、お客様サポートへお電話でお申し付けください。ご本人確認のうえ解除いたします。\n\n"
            "お心当たりがない場合は、第三者がパスワードを推測しようとしている可能性があります。\n"
            "当社からのメールに、ログインページやパスワード変更ページへのリンクが含まれることはありません。"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def password_unlocked_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime,
                           ip: str | None) -> Message:
    if lang == "en":
        subject = "Password sign-in is unlocked"
        body = (
            f"At {jst(when, 'en')} the lock on password sign-in was lifted after a confirmation with your "
            f"passkey (from {ip or 'unknown'}).\n\n"
            "If this was not you, please phone our customer support at once.\n"
            "Our e-mails never contain links to a login or password page."
        )
    else:
        subject = "パスワードでのログインのロックを解除しました"
        body = (
            f"{jst(when, 'ja')}に、パスキーでのご本人確認のうえ、パスワードでのログインのロックが解除されました"
            f"（接続元：{ip or '不明'}）。\n\n"
            "お心当たりがない場合は、すぐにお客様サポートへお電話ください。\n"
            "当社からのメールに、ログインページやパスワード変更ページへのリンクが含まれることはありません。"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def passkey_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, added: bool, name: str,
                 provider: str | None, ip: str | None, hold_until: datetime | None = None) -> Message:
    """`name` is whatever the person who added (or renamed) the passkey typed: quoted and labelled
    as theirs. `hold_until`: a new passkey on hold until then (contract, "New passkeys on hold")."""
    held_until = hold_until if added else None
    if lang == "en":
        subject = "A passkey was added to your account" if added else "A passkey was removed from your account"
        what = "added" if added else "removed"
        hold = (f"Until {jst(held_until, 'en')} this new passkey cannot be used for trading or withdrawals.\n"
                "If you did not add it, phone our customer support at once (see our website for the number).\n\n"
                if held_until is not None else "")
        body = (
            f"A passkey was {what} at {jst(when, 'en')}.\n\n"
            f"Name (chosen by whoever added or renamed it): {shown_name(name, 'en')}\n"
            f"Provider: {provider or 'unknown'}\n"
            f"From:     {ip or 'unknown'}\n"
            "(Anyone adding a passkey can name it as they like: the name is not a message from us.)\n\n"
            f"{hold}If this was you, there is nothing to do.\n\n{_NOT_YOU[1]}"
        )
    else:
        subject = "パスキーを登録しました" if added else "パスキーを削除しました"
        what = "登録" if added else "削除"
        hold = (f"この新しいパスキーは、{jst(held_until, 'ja')}まで、お取引やご出金には使えません。\n"
                "このパスキーの登録にお心当たりがない場合は、ただちにお客様サポートへお電話でご連絡ください"
                "（連絡先は当社ウェブサイトでご確認ください）。\n\n" if held_until is not None else "")
        body = (
            f"{jst(when, 'ja')}に、お客様のアカウントでパスキーが{what}されました。\n\n"
            f"名前（登録・変更時に付けられた名前）：{shown_name(name, 'ja')}\n"
            f"提供元：{provider or '不明'}\n"
            f"接続元：{ip or '不明'}\n"
            "（パスキーの名前は登録した方が自由に付けられるもので、当社からのご案内ではありません）\n\n"
            f"{hold}お客様ご自身による操作であれば、対応は不要です。\n\n{_NOT_YOU[0]}"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def clone_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, name: str,
               ip: str | None) -> Message:
    if lang == "en":
        subject = "A login with your passkey was refused"
        body = (
            f"At {jst(when, 'en')} a login with your passkey {shown_name(name, 'en')} was refused "
            f"(from {ip or 'unknown'}): "
            "the security key reported a usage count we had already seen, which can mean it was copied.\n\n"
            "Please phone our customer support. Until then, log in with another passkey or your password.\n"
            "Our e-mails never contain links to a login or password page."
        )
    else:
        subject = "パスキーでのログインをお断りしました"
        body = (
            f"{jst(when, 'ja')}に、パスキー{shown_name(name, 'ja')}でのログインをお断りしました（接続元：{ip or '不明'}）。"
            "セキュリティキーが報告した使用回数が過去の値と矛盾しており、キーが複製された可能性があります。\n\n"
            "お手数ですが、お客様サポートへお電話でご連絡ください。それまでは、別のパスキーまたはパスワードでログインしてください。\n"
            "当社からのメールに、ログインページやパスワード変更ページへのリンクが含まれることはありません。"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def reset_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, count: int) -> Message:
    if lang == "en":
        subject = "Your passkeys were reset by customer support"
        body = (
            f"At your request, customer support removed all {count} passkey(s) from your account at "
            f"{jst(when, 'en')} and logged out every session.\n\n"
            "Log in with your customer code and password, then create a new passkey.\n\n"
            f"{_NOT_YOU[1]}"
        )
    else:
        subject = "パスキーをリセットしました"
        body = (
            f"お客様のお申し出により、{jst(when, 'ja')}に、お客様サポートがアカウントのパスキー（{count}個）をすべて削除し、"
            "すべてのログインを終了しました。\n\n"
            "お客様コードとパスワードでログインしたうえで、新しいパスキーを作成してください。\n\n"
            f"{_NOT_YOU[0]}"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def email_changed_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, new_address: str,
                       ip: str | None) -> Message:
    """Sent to the OLD address: the one place a hijacker cannot silence."""
    masked = mask_email(new_address)
    if lang == "en":
        subject = "Your registered e-mail address was changed"
        body = (f"At {jst(when, 'en')} the e-mail address of your account was changed to {masked} "
                f"(from {ip or 'unknown'}). Remembered PCs must confirm with a code again.\n\n"
                f"If this was you, there is nothing to do.\n\n{_NOT_YOU[1]}")
    else:
        subject = "登録メールアドレスを変更しました"
        body = (f"{jst(when, 'ja')}に、お客様のアカウントの登録メールアドレスが {masked} に変更されました"
                f"（接続元：{ip or '不明'}）。記憶済みのPCでも、次回は確認コードが必要です。\n\n"
                f"お客様ご自身による操作であれば、対応は不要です。\n\n{_NOT_YOU[0]}")
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def support_request_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, action: str) -> Message:
    """Sent to the address on file when a staff member asks for a passkey reset or an e-mail change:
    done only after a second staff member approves, so a customer who did not call has time to."""
    what_en = {"reset-passkeys": "remove all your passkeys", "set-email": "change your registered e-mail address"}[action]
    what_ja = {"reset-passkeys": "お客様のパスキーをすべて削除する", "set-email": "登録メールアドレスを変更する"}[action]
    if lang == "en":
        subject = "Customer support was asked to change your account"
        body = (f"At {jst(when, 'en')} customer support was asked to {what_en}. A second staff member must "
                "approve it before it is done, within the hour.\n\n"
                f"If you asked for this, there is nothing to do.\n\n{_NOT_YOU[1]}")
    else:
        subject = "お客様サポートへの手続きの依頼を受け付けました"
        body = (f"{jst(when, 'ja')}に、お客様サポートに「{what_ja}」手続きの依頼がありました。"
                "別の担当者の承認（1時間以内）を経て実行されます。\n\n"
                f"お客様ご自身のお申し出であれば、対応は不要です。\n\n{_NOT_YOU[0]}")
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)
