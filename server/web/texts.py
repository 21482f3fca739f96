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
    "login.passkey": ("パスキーでログイン", "Log in with a passkey"),
    "login.passkey_hint": (
        "Face ID・指紋認証・Windows Hello・セキュリティキーなど、登録済みのパスキーでログインできます。お客様コードの入力は不要です。",
        "Use a passkey you registered (Face ID, fingerprint, Windows Hello, a security key…). No customer code needed.",
    ),
    "login.or": ("または", "or"),
    "account.passkey_invite_title": ("パスキーを作成しましょう", "Create a passkey"),
    "account.passkey_invite": (
        "パスキーを使うと、パスワードや確認コードなしで、Face ID・指紋認証・Windows Helloなどで安全にログインできます。偽サイトにだまされて情報を盗まれる心配もありません。",
        "With a passkey you log in with Face ID, a fingerprint or Windows Hello instead of a password and code, "
        "and a fake site cannot steal it.",
    ),
    "account.passkey_create": ("パスキーを作成", "Create a passkey"),
    "account.passkey_manage": ("パスキーの管理", "Manage passkeys"),
    "account.passkey_count": ("登録済みのパスキー：{count}個", "Passkeys registered: {count}"),
    "passkeys.title": ("パスキーの管理", "Your passkeys"),
    "passkeys.lead": (
        "パスキーは最大{limit}個まで登録できます。スマートフォンを紛失した場合に備えて、別の端末（PCやセキュリティキーなど）にも2つ目のパスキーを登録しておくことをおすすめします。",
        "You can register up to {limit} passkeys. In case you lose a phone, register a second passkey on another "
        "device (a computer or a security key).",
    ),
    "passkeys.add": ("パスキーを追加", "Add a passkey"),
    "passkeys.limit_reached": (
        "登録できるパスキーは{limit}個までです。追加するには、使っていないパスキーを削除してください。",
        "You have reached the limit of {limit} passkeys. Delete one you no longer use to add another.",
    ),
    "passkeys.none": ("まだパスキーがありません。", "You have no passkeys yet."),
    "passkeys.provider": ("提供元", "Provider"),
    "passkeys.provider_unknown": ("不明（セキュリティキーなど）", "Unknown (e.g. a security key)"),
    "passkeys.synced": ("同期パスキー", "Synced passkey"),
    "passkeys.synced_help": (
        "同じアカウントの他の端末でも使えます。端末を紛失・買い替えしても、アカウントにサインインすれば引き続き使えます。",
        "Works on your other devices signed in to the same account; it survives losing or replacing this device.",
    ),
    "passkeys.device": ("この端末のみ", "This device only"),
    "passkeys.device_help": (
        "この端末（またはセキュリティキー）の中にだけあります。紛失・故障・買い替えの際は使えなくなるため、別のパスキーも登録しておいてください。",
        "Lives only on this device or security key: if it is lost, broken or replaced, this passkey is gone, so keep another one.",
    ),
    "passkeys.created": ("登録日時", "Added"),
    "passkeys.last_used": ("最終利用", "Last used"),
    "passkeys.never_used": ("未使用", "Not used yet"),
    "passkeys.rename": ("名前を変更", "Rename"),
    "passkeys.name_label": ("パスキーの名前", "Passkey name"),
    "passkeys.save": ("保存", "Save"),
    "passkeys.cancel": ("キャンセル", "Cancel"),
    "passkeys.delete": ("削除", "Delete"),
    "passkeys.delete_title": ("パスキーを削除しますか？", "Delete this passkey?"),
    "passkeys.delete_body": (
        "「{name}」を削除すると、このパスキーではログインできなくなります。端末側のパスキーは、端末の設定から削除してください。",
        "After deleting “{name}” you can no longer log in with it. Remove it from the device in its own settings too.",
    ),
    "passkeys.confirm_delete": ("削除する", "Delete"),
    "passkeys.back": ("マイアカウントへ戻る", "Back to my account"),
    "stepup.title": ("ご本人確認", "Confirm it is you"),
    "stepup.lead": ("この操作の前に、もう一度ご本人確認をお願いします。", "Before this change, please confirm it is you."),
    "stepup.passkey": ("パスキーで確認", "Confirm with a passkey"),
    "stepup.email": ("メールで確認コードを受け取る", "E-mail me a code"),
    "stepup.code_label": ("確認コード（6桁）", "Code (6 digits)"),
    "stepup.submit": ("確認する", "Confirm"),
    "stepup.cancel": ("キャンセル", "Cancel"),
    "notfound.title": ("ページが見つかりません", "Page not found"),
    "notfound.lead": ("お探しのページは見つかりませんでした。", "The page you asked for does not exist."),
    "notfound.home": ("トップへ戻る", "Back to the start"),
    "js.busy": ("処理中です…", "Working…"),
    "js.code_sent": ("新しい確認コードをメールで送信しました。前のコードは使えません。",
                     "We have e-mailed you a new code. The previous one no longer works."),
    "js.passkey_cancelled": (
        "パスキーの操作がキャンセルされたか、時間切れになりました。もう一度お試しください。",
        "The passkey request was cancelled or timed out. Please try again.",
    ),
    "js.passkey_unsupported": (
        "このブラウザはパスキーに対応していません。最新のブラウザをお使いください。",
        "This browser does not support passkeys. Please use an up-to-date browser.",
    ),
    "js.passkey_exists": (
        "この認証器には、すでにパスキーが登録されています。",
        "This authenticator already holds one of your passkeys.",
    ),
    "js.passkey_added": ("パスキーを登録しました。", "Your passkey has been added."),
    "js.passkey_renamed": ("名前を変更しました。", "The name has been changed."),
    "js.passkey_deleted": ("パスキーを削除しました。", "The passkey has been deleted."),
    "js.code_sent_stepup": ("確認コードをメールで送信しました。", "We have e-mailed you a code."),
    "js.network": (
        "通信できませんでした。接続を確認して、もう一度お試しください。",
        "We could not reach the server. Check your connection and try again.",
    ),
}


def translate(key: str, lang: str, **values) -> str:
    ja, en = TEXTS[key]
    text = en if lang == "en" else ja
    return text.format(**values) if values else text
