"""What the pages say, in Japanese and English, side by side."""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    "site.skip": ("本文へ移動", "Skip to content"),
    "site.lang_switch": ("English", "日本語"),
    "login.title": ("ログイン", "Log in"),
    "login.lead": ("お客様コードとパスワードを入力してください。", "Enter your customer code and password."),
    "login.customer_code": ("お客様コード", "Customer code"),
    "login.password": ("パスワード", "Password"),
    "login.submit": ("ログイン", "Log in"),
    "login.after": (
        "パスワードが確認できたら、登録のメールアドレスに確認コードをお送りします。",
        "Once your password is checked, we e-mail a confirmation code to your registered address.",
    ),
    "login.phishing": (
        "当社がメールやSMSでログインページのリンクをお送りすることはありません。ブックマークまたは公式アプリからアクセスしてください。",
        "We never send links to this page by e-mail or SMS. Always come here from your bookmark or our official app.",
    ),
    "code.title": ("確認コードの入力", "Enter your confirmation code"),
    "code.lead": ("{email} に6桁の確認コードをお送りしました。有効期限は{minutes}分です。",
                  "We sent a 6-digit code to {email}. It is valid for {minutes} minutes."),
    "code.label": ("確認コード（6桁）", "Confirmation code (6 digits)"),
    "code.remember": ("このPCを記憶する（{days}日間、確認コードを省略）", "Remember this PC (skip the code for {days} days)"),
    "code.remember_hint": (
        "ご自身専用のPCでのみお使いください。パスワードは毎回必要です。",
        "Only on a computer that is yours alone. The password is still needed every time.",
    ),
    "code.submit": ("確認する", "Confirm"),
    "code.resend": ("コードを再送", "Send a new code"),
    "code.restart": ("最初からやり直す", "Start again"),
    "account.title": ("マイアカウント", "My account"),
    "account.greeting": ("{name} 様", "Hello, {name}"),
    "account.customer_code": ("お客様コード", "Customer code"),
    "account.method": ("今回のログイン方法", "How you logged in"),
    "account.logged_in_at": ("ログイン日時", "Logged in at"),
    "account.logout": ("ログアウト", "Log out"),
    "method.email_code": ("パスワード＋メールの確認コード", "Password + e-mailed code"),
    "method.trusted_device": ("パスワード＋記憶済みのPC", "Password + remembered PC"),
    "method.passkey": ("パスキー", "Passkey"),
    "notfound.title": ("ページが見つかりません", "Page not found"),
    "notfound.lead": ("お探しのページは見つかりませんでした。", "The page you asked for does not exist."),
    "notfound.home": ("トップへ戻る", "Back to the start"),
    "js.busy": ("処理中です…", "Working…"),
    "js.code_sent": ("新しい確認コードをメールで送信しました。前のコードは使えません。",
                     "We have e-mailed you a new code. The previous one no longer works."),
    "js.network": (
        "通信できませんでした。接続を確認して、もう一度お試しください。",
        "We could not reach the server. Check your connection and try again.",
    ),
}


def translate(key: str, lang: str, **values) -> str:
    ja, en = TEXTS[key]
    text = en if lang == "en" else ja
    return text.format(**values) if values else text
