"""The customer's language (Japanese unless English is asked for) and the messages they read.

The messages themselves are declared with their error codes in errors.py; here they are filled in."""

from __future__ import annotations

from datetime import datetime

from .config import JST
from .errors import words

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


def message(key: str, lang: str, **values) -> str:
    """The message `key` (an error code, or another wording of one: errors.py) in `lang`, filled in
    from `values`; ValueError for a key nobody declared."""
    ja, en = words(key)
    if "why" in values:
        ja_why, en_why = REJECTION_REASONS.get(values["why"], REJECTION_REASONS["parse"])
        values = {**values, "why": en_why if lang == "en" else ja_why}
    if isinstance(values.get("hold_until"), str):
        values = {**values, "hold_until_text": _local_time(values["hold_until"], lang)}
    if isinstance(values.get("retry_after"), int):
        values = {**values, "wait": _wait(values["retry_after"], lang)}
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
