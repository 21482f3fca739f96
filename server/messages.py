"""The e-mails Tobira sends, in Japanese or English.

Rules for every message (contract, "E-mail"): UTF-8 text/plain; a code stands alone on its own
line; no link to a login or password page (phishing mails imitate exactly those).
"""

from __future__ import annotations

from datetime import datetime
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

from .config import JST

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
    if lang == "en":
        return local.strftime("%Y-%m-%d %H:%M (Japan time)")
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}（日本時間）"


def _message(*, sender: str, to: str, subject: str, body: str, rp_name: str) -> Message:
    # The classic MIMEText/Header API, not EmailMessage: the same UTF-8 text/plain message (base64
    # body, RFC 2047 subject) for a fifth of the CPU, and a login notice is made on every login.
    msg = MIMEText(body, "plain", "utf-8")
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = Header(f"[{rp_name}] {subject}", "utf-8")
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    msg["Auto-Submitted"] = "auto-generated"
    return msg


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
    ja_method, en_method = METHODS.get(method, (method, method))
    if lang == "en":
        subject = "New login to your account"
        body = (
            "Your account was just logged in to.\n\n"
            f"When:    {jst(when, 'en')}\n"
            f"How:     {en_method}\n"
            f"From:    {ip or 'unknown'}\n"
            f"Browser: {browser or 'unknown'}\n\n"
            f"If this was you, there is nothing to do.\n\n{_NOT_YOU[1]}"
        )
    else:
        subject = "ログインのお知らせ"
        body = (
            "お客様のアカウントにログインがありました。\n\n"
            f"日時：{jst(when, 'ja')}\n"
            f"方法：{ja_method}\n"
            f"接続元：{ip or '不明'}\n"
            f"ブラウザ：{browser or '不明'}\n\n"
            f"お客様ご自身によるログインであれば、対応は不要です。\n\n{_NOT_YOU[0]}"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def locked_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, ip: str | None) -> Message:
    if lang == "en":
        subject = "Your account has been locked"
        body = (
            f"After repeated failed logins, your account was locked at {jst(when, 'en')} "
            f"(last attempt from {ip or 'unknown'}).\n\n"
            "To unlock it, please phone our customer support; we will confirm it is you.\n\n"
            "If the failed logins were not yours, someone may be trying to guess your password.\n"
            "Our e-mails never contain links to a login or password page."
        )
    else:
        subject = "アカウントをロックしました"
        body = (
            f"ログインの失敗が続いたため、{jst(when, 'ja')}にお客様のアカウントをロックしました"
            f"（最後の試行の接続元：{ip or '不明'}）。\n\n"
            "ロックの解除は、お客様サポートへお電話でお申し付けください。ご本人確認のうえ解除いたします。\n\n"
            "お心当たりがない場合は、第三者がパスワードを推測しようとしている可能性があります。\n"
            "当社からのメールに、ログインページやパスワード変更ページへのリンクが含まれることはありません。"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def passkey_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, added: bool, name: str,
                 provider: str | None, ip: str | None) -> Message:
    if lang == "en":
        subject = "A passkey was added to your account" if added else "A passkey was removed from your account"
        what = "added" if added else "removed"
        body = (
            f"A passkey was {what} at {jst(when, 'en')}.\n\n"
            f"Passkey:  {name}\n"
            f"Provider: {provider or 'unknown'}\n"
            f"From:     {ip or 'unknown'}\n\n"
            f"If this was you, there is nothing to do.\n\n{_NOT_YOU[1]}"
        )
    else:
        subject = "パスキーを登録しました" if added else "パスキーを削除しました"
        what = "登録" if added else "削除"
        body = (
            f"{jst(when, 'ja')}に、お客様のアカウントでパスキーが{what}されました。\n\n"
            f"パスキー：{name}\n"
            f"提供元：{provider or '不明'}\n"
            f"接続元：{ip or '不明'}\n\n"
            f"お客様ご自身による操作であれば、対応は不要です。\n\n{_NOT_YOU[0]}"
        )
    return _message(sender=sender, to=to, subject=subject, body=body, rp_name=rp_name)


def clone_mail(*, sender: str, to: str, rp_name: str, lang: str, when: datetime, name: str,
               ip: str | None) -> Message:
    if lang == "en":
        subject = "A login with your passkey was refused"
        body = (
            f"At {jst(when, 'en')} a login with your passkey “{name}” was refused (from {ip or 'unknown'}): "
            "the security key reported a usage count we had already seen, which can mean it was copied.\n\n"
            "Please phone our customer support. Until then, log in with another passkey or your password.\n"
            "Our e-mails never contain links to a login or password page."
        )
    else:
        subject = "パスキーでのログインをお断りしました"
        body = (
            f"{jst(when, 'ja')}に、パスキー「{name}」でのログインをお断りしました（接続元：{ip or '不明'}）。"
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
