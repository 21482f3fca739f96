"""The customer's language (Japanese unless English is asked for) and the messages they read."""

from __future__ import annotations

from datetime import datetime

from .config import JST

LANGUAGES = ("ja", "en")


def choose_language(query_lang: str | None, accept_language: str | None) -> str:
    """`?lang=` wins; else the first of ja/en in the Accept-Language preference order; else ja."""
    if query_lang in LANGUAGES:
        return query_lang
    best, best_q = "ja", 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        # Equal weights keep the order the browser listed them in.
        if q > best_q:
            best, best_q = primary, q
    return best


# Error messages say what to do next; keep both languages side by side so neither falls behind.
ERRORS: dict[str, tuple[str, str]] = {
    "invalid_request": ("入力内容を確認してください。", "Please check what you entered."),
    "invalid_credentials": (
        "お客様コードまたはパスワードが正しくありません。失敗が続くと、パスワードでのログインはロックされます。",
        "The customer code or password is not correct. After repeated failures, password sign-in is locked.",
    ),
    "account_locked": (
        "ログインの失敗が続いたため、パスワードと確認コードでのログインをロックしました。パスキーをお持ちの場合はパスキーでログインできます。お持ちでない場合はお客様サポートへご連絡ください。",
        "Sign-in with a password and code is locked after too many failures. If you have a passkey, log in with it; "
        "otherwise please contact customer support.",
    ),
    "account_held": (
        "現在このアカウントにはログインできません。お客様サポートへご連絡ください。",
        "This account cannot be signed in to at the moment. Please contact customer support.",
    ),
    "not_authenticated": ("ログインしてください。", "Please log in."),
    "no_pending_login": (
        "ログインの手続きが見つかりません。最初からログインしてください。",
        "No login is in progress. Please start again from the login page.",
    ),
    "code_invalid": (
        "確認コードが正しくありません。あと{attempts_left}回入力できます。",
        "That code is not correct. You can try {attempts_left} more time(s).",
    ),
    "code_expired": (
        "確認コードの有効期限が切れました。「コードを再送」を押して新しいコードを受け取ってください。",
        "This code has expired. Press “Send a new code” to get a new one.",
    ),
    "code_exhausted": (
        "確認コードの入力に続けて失敗したため、このコードは無効になりました。「コードを再送」を押して新しいコードを受け取ってください。",
        "Too many wrong entries: this code no longer works. Press “Send a new code” to get a new one.",
    ),
    "resend_too_soon": (
        "コードは{retry_after}秒後に再送できます。",
        "You can ask for a new code in {retry_after} seconds.",
    ),
    "rate_limited": (
        "失敗が続いたため、しばらく受け付けを停止しています。{wait}後にもう一度お試しください。",
        "Too many failed attempts. Please try again in {wait}.",
    ),
    "rate_limited_codes": (
        "確認コードの送信が続いたため、しばらく送信を停止しています。{wait}後にもう一度お試しください。",
        "Too many codes have been sent. Please try again in {wait}.",
    ),
    "rate_limited_requests": (
        "リクエストが続いたため、しばらく受け付けを停止しています。{wait}後にもう一度お試しください。",
        "Too many requests. Please try again in {wait}.",
    ),
    "passkey_rejected": (
        "パスキーを確認できませんでした。もう一度お試しください。",
        "We could not verify this passkey. Please try again.",
    ),
    "passkey_registration_rejected": (
        "パスキーを登録できませんでした（{why}）。もう一度お試しください。",
        "The passkey could not be registered ({why}). Please try again.",
    ),
    "unknown_credential": (
        "このパスキーは登録されていません。別のパスキーを選ぶか、お客様コードとパスワードでログインしてください。",
        "This passkey is not registered with us. Choose another passkey, or log in with your customer code and password.",
    ),
    "ceremony_expired": (
        "手続きの有効期限が切れました。もう一度最初からお試しください。",
        "This request has expired. Please start again.",
    ),
    "step_up_required": (
        "この操作の前に、ご本人確認をもう一度お願いします。",
        "Please confirm it is you again before doing this.",
    ),
    "passkey_limit_reached": (
        "登録できるパスキーは{limit}個までです。新しく登録するには、使っていないパスキーを削除してください。",
        "You can register up to {limit} passkeys. Delete one you no longer use to add another.",
    ),
    "email_required": (
        "パスキーを登録するには、メールアドレスの登録が必要です。お客様サポートへご連絡ください。",
        "A registered e-mail address is needed before you can add a passkey. Please contact customer support.",
    ),
    "credential_exists": (
        "このパスキーはすでに登録されています。",
        "This passkey is already registered.",
    ),
    "no_passkey": (
        "登録済みのパスキーがありません。メールの確認コードでご本人確認をしてください。",
        "You have no passkey yet. Please confirm it is you with an e-mailed code.",
    ),
    "passkey_required": (
        "この操作には、パスキーでのログインが必要です。パスキーでログインし直してください。",
        "This needs a login with a passkey. Please log in again with your passkey.",
    ),
    "passkey_on_hold": (
        "このパスキーは新しく登録されたため、{hold_until_text}まではお取引・ご出金に使えません。お心当たりのない登録であれば、すぐにお客様サポートへご連絡ください。",
        "This passkey was added recently: it cannot be used for trading or withdrawals until {hold_until_text}. "
        "If you did not add it, call customer support at once.",
    ),
    "step_up_passkey_required": (
        "この操作の前に、登録済みのパスキーでご本人確認をお願いします（メールの確認コードでは行えません）。",
        "Please confirm it is you with one of your passkeys first (an e-mailed code cannot be used for this).",
    ),
    "csrf_rejected": (
        "このページからのリクエストは受け付けられません。ページを再読み込みしてください。",
        "This request was not accepted. Please reload the page.",
    ),
    "payload_too_large": ("送信されたデータが大きすぎます。", "The request is too large."),
    "unsupported_media_type": (
        "リクエストの形式が正しくありません。",
        "The request must be sent as JSON.",
    ),
    "not_found": ("見つかりません。", "Not found."),
    "method_not_allowed": ("この操作はできません。", "This method is not allowed here."),
    "mail_unavailable": (
        "メールを送信できませんでした。しばらくしてからもう一度お試しください。",
        "We could not send the e-mail. Please try again in a little while.",
    ),
    "unavailable": (
        "ただいま混み合っているか、メンテナンス中です。しばらくしてからもう一度お試しください。",
        "The service is busy or under maintenance. Please try again in a little while.",
    ),
    "internal_error": (
        "問題が発生しました。しばらくしてからもう一度お試しください。",
        "Something went wrong. Please try again in a little while.",
    ),
}

# Why a registration was refused, in the customer's words (the contract puts the reason in `message`).
REJECTION_REASONS: dict[str, tuple[str, str]] = {
    "origin": ("別のサイトからの応答です", "the answer came from another site"),
    "challenge": ("手続きが一致しません", "it did not answer this request"),
    "type": ("応答の種類が違います", "the answer was of the wrong kind"),
    "rp_id": ("このサイト用のパスキーではありません", "the passkey is not for this site"),
    "up": ("操作が確認できませんでした", "no user presence was confirmed"),
    "uv": ("生体認証またはPINによる確認が必要です", "unlocking with biometrics or a PIN is required"),
    "flags": ("認証器の応答に矛盾があります", "the authenticator's answer is inconsistent"),
    "alg_not_requested": ("対応していない鍵の種類です", "the key type is not supported"),
    "attestation": ("認証器の応答形式が正しくありません", "the authenticator's statement is malformed"),
    "credential_id": ("パスキーの識別子が一致しません", "the passkey's identifier does not match"),
    "parse": ("応答の形式が正しくありません", "the answer is malformed"),
    "token_binding": ("応答の形式が正しくありません", "the answer is malformed"),
}

NOTICES: dict[str, tuple[str, str]] = {
    "code_sent": (
        "確認コードをメールで送信しました。",
        "We have e-mailed you a new code.",
    ),
}


def message(code: str, lang: str, **values) -> str:
    if "why" in values:
        ja_why, en_why = REJECTION_REASONS.get(values["why"], REJECTION_REASONS["parse"])
        values = {**values, "why": en_why if lang == "en" else ja_why}
    if isinstance(values.get("hold_until"), str):
        values = {**values, "hold_until_text": _local_time(values["hold_until"], lang)}
    if isinstance(values.get("retry_after"), int):
        values = {**values, "wait": _wait(values["retry_after"], lang)}
    ja, en = ERRORS.get(code) or NOTICES.get(code) or ERRORS["internal_error"]
    text = en if lang == "en" else ja
    try:
        return text.format(**values)
    except (KeyError, IndexError):
        return text


def _wait(seconds: int, lang: str) -> str:
    """A wait as people say it: seconds up to two minutes, then whole minutes (rounded up)."""
    if seconds < 120:
        return f"{seconds} seconds" if lang == "en" else f"{seconds}秒"
    minutes = -(-seconds // 60)
    return f"{minutes} minutes" if lang == "en" else f"{minutes}分"


def _local_time(iso: str, lang: str) -> str:
    """An ISO time as the customer reads it: Japan time, to the minute."""
    local = datetime.fromisoformat(iso).astimezone(JST)
    if lang == "en":
        return local.strftime("%B %-d, %Y %H:%M (Japan time)")
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
