"""Every error the API answers with, each declared once, and ServiceError, how the domain raises one.

An `ErrorCode` is all there is to say about one of the contract's error codes: its HTTP status, its
message in Japanese and English (and any other wording of it, by message key), what it tells a
client (its /openapi.json description) and the extra fields it always carries. The answers
(web/responses.py), the messages (i18n.message) and /openapi.json (openapi.py) read them from here;
nothing else spells a status, a message or a description of a code.

The domain raises ServiceError kinds; the web layer turns them into `{"error": {"code", "message",
...}}` with the message in the request's language. `extra` holds the code's extra fields
(attempts_left, retry_after, credential_id, hold_until) and values that only fill in the message
(limit, why).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Mapping

# The statuses the API answers with, as /openapi.json names them.
STATUSES: Mapping[int, str] = MappingProxyType({
    400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    409: "Conflict", 410: "Gone", 413: "Payload too large", 415: "Unsupported media type", 422: "Invalid field", 423: "Locked",
    429: "Too many requests", 500: "Internal error", 503: "Unavailable",
})


@dataclass(frozen=True, eq=False)  # each code is one object: compared and hashed by identity
class ErrorCode:
    """One of the contract's error codes, and all there is to say about it (declared by `_declare`)."""

    code: str  # on the wire, `error.code`
    status: int
    ja: str  # the message; `{name}` is filled in from the error's extra values
    en: str
    about: str  # what it tells a client (/openapi.json)
    extras: tuple[str, ...]  # the contract's extra fields it always carries, inside `error`
    other_statuses: Mapping[int, str | None]  # where it also answers: status -> what it means there (None: `about`)
    wordings: Mapping[str, tuple[str, str]]  # other messages for it, by message key: (ja, en)

    def at(self, status: int | None = None) -> Answer:
        """This code at `status` (its own when None); ValueError if it never answers with that status."""
        status = self.status if status is None else status
        if status != self.status and status not in self.other_statuses:
            raise ValueError(f"error code {self.code} is not declared at status {status}")
        return Answer(self, status)

    def words(self, message_key: str | None = None) -> tuple[str, str]:
        """(ja, en): the code's message, or its wording named `message_key`."""
        if message_key is None or message_key == self.code:
            return self.ja, self.en
        try:
            return self.wordings[message_key]
        except KeyError:
            raise ValueError(f"{message_key!r} is not a wording of error code {self.code}") from None


@dataclass(frozen=True)
class Answer:
    """An error code at one of its statuses: what a ServiceError kind answers with, and what an
    operation lists in /openapi.json."""

    error: ErrorCode
    status: int

    @property
    def about(self) -> str:
        return self.error.other_statuses.get(self.status) or self.error.about


_CODES: dict[str, ErrorCode] = {}
_WORDS: dict[str, tuple[str, str]] = {}  # every message, by key: the codes' own and their other wordings
CODES: Mapping[str, ErrorCode] = MappingProxyType(_CODES)


def _declare(code: str, status: int, *, ja: str, en: str, about: str, extras: tuple[str, ...] = (),
             other_statuses: Mapping[int, str | None] | None = None,
             wordings: Mapping[str, tuple[str, str]] | None = None) -> ErrorCode:
    declared = ErrorCode(code, status, ja, en, about, extras, MappingProxyType(dict(other_statuses or {})),
                         MappingProxyType(dict(wordings or {})))
    for unknown in {status, *declared.other_statuses} - set(STATUSES):
        raise ValueError(f"error code {code}: status {unknown} is not in STATUSES")
    for key, words in {code: (ja, en), **declared.wordings}.items():
        if key in _WORDS:
            raise ValueError(f"message key {key} is declared twice")
        _WORDS[key] = words
    _CODES[code] = declared
    return declared


def code_named(code: str) -> ErrorCode:
    try:
        return _CODES[code]
    except KeyError:
        raise ValueError(f"no error code {code!r} is declared in server/errors.py") from None


def words(key: str) -> tuple[str, str]:
    """(ja, en) of a message key: an error code, or another wording of one."""
    try:
        return _WORDS[key]
    except KeyError:
        raise ValueError(f"no message {key!r} is declared in server/errors.py") from None


# --- the codes -----------------------------------------------------------------------------------
# Messages say what to do next; both languages side by side so neither falls behind.

INVALID_REQUEST = _declare(
    "invalid_request", 400, ja="入力内容を確認してください。", en="Please check what you entered.",
    about="the body is not JSON or not a JSON object (a string holding a lone surrogate counts as not JSON), "
          "or a WebAuthn response cannot be parsed",
    other_statuses={422: "a field is missing, ill-typed or out of range"})
INVALID_FIELD = INVALID_REQUEST.at(422)
UNSUPPORTED_MEDIA_TYPE = _declare(
    "unsupported_media_type", 415, ja="リクエストの形式が正しくありません。", en="The request must be sent as JSON.",
    about="a body was sent with a Content-Type other than application/json")
PAYLOAD_TOO_LARGE = _declare(
    "payload_too_large", 413, ja="送信されたデータが大きすぎます。", en="The request is too large.",
    about="the body is over 64 KiB")
CSRF_REJECTED = _declare(
    "csrf_rejected", 403, ja="このページからのリクエストは受け付けられません。ページを再読み込みしてください。",
    en="This request was not accepted. Please reload the page.",
    about="a state-changing request without an Origin header equal to a configured origin")
NOT_FOUND = _declare(
    "not_found", 404, ja="見つかりません。", en="Not found.",
    about="no such passkey among this customer's")
METHOD_NOT_ALLOWED = _declare(
    "method_not_allowed", 405, ja="この操作はできません。", en="This method is not allowed here.",
    about="the path does not answer this method (`Allow` lists the ones it does)")
UNAVAILABLE = _declare(
    "unavailable", 503, ja="ただいま混み合っているか、メンテナンス中です。しばらくしてからもう一度お試しください。",
    en="The service is busy or under maintenance. Please try again in a little while.",
    about="the database does not answer")
INTERNAL_ERROR = _declare(
    "internal_error", 500, ja="問題が発生しました。しばらくしてからもう一度お試しください。",
    en="Something went wrong. Please try again in a little while.",
    about="a fault of the server (logged with the request id)")
MAIL_UNAVAILABLE = _declare(
    "mail_unavailable", 503, ja="メールを送信できませんでした。しばらくしてからもう一度お試しください。",
    en="We could not send the e-mail. Please try again in a little while.",
    about="the e-mail with the code could not be sent; nothing was changed")
INVALID_CREDENTIALS = _declare(
    "invalid_credentials", 401,
    ja="お客様コードまたはパスワードが正しくありません。失敗が続くと、パスワードでのログインはロックされます。",
    en="The customer code or password is not correct. After repeated failures, password sign-in is locked.",
    about="wrong customer code or password (the same answer for an unknown customer)")
ACCOUNT_LOCKED = _declare(
    "account_locked", 423,
    ja="ログインの失敗が続いたため、パスワードと確認コードでのログインをロックしました。パスキーをお持ちの場合はパスキーでログインできます。"
       "お持ちでない場合はお客様サポートへご連絡ください。",
    en="Sign-in with a password and code is locked after too many failures. If you have a passkey, log in with it; "
       "otherwise please contact customer support.",
    about="the account is under the support desk's hold (every sign-in, passkeys included, after the assertion was "
          "verified), or password and code sign-in is locked after too many failures (the code path; the password "
          "itself then just answers invalid_credentials)",
    wordings={"account_held": (  # the support desk's hold, told at a verified passkey login
        "現在このアカウントにはログインできません。お客様サポートへご連絡ください。",
        "This account cannot be signed in to at the moment. Please contact customer support.")})
RATE_LIMITED = _declare(
    "rate_limited", 429, ja="失敗が続いたため、しばらく受け付けを停止しています。{wait}後にもう一度お試しください。",
    en="Too many failed attempts. Please try again in {wait}.",
    about="too many failed sign-ins from this address or for this customer code, too many code e-mails, or too many "
          "passkey-login options from this address (TOBIRA_LOGIN_OPTIONS_LIMIT); an IPv6 address counts by its /64; "
          "`retry_after` seconds until the next try",
    extras=("retry_after",),
    wordings={
        "rate_limited_codes": (
            "確認コードの送信が続いたため、しばらく送信を停止しています。{wait}後にもう一度お試しください。",
            "Too many codes have been sent. Please try again in {wait}."),
        "rate_limited_requests": (
            "リクエストが続いたため、しばらく受け付けを停止しています。{wait}後にもう一度お試しください。",
            "Too many requests. Please try again in {wait}."),
    })
NO_PENDING_LOGIN = _declare(
    "no_pending_login", 401, ja="ログインの手続きが見つかりません。最初からログインしてください。",
    en="No login is in progress. Please start again from the login page.",
    about="no login is waiting for a code in this browser: start again with the password")
CODE_INVALID = _declare(
    "code_invalid", 400, ja="確認コードが正しくありません。あと{attempts_left}回入力できます。",
    en="That code is not correct. You can try {attempts_left} more time(s).",
    about="the code is wrong; `attempts_left` more wrong entries are allowed",
    extras=("attempts_left",))
CODE_EXPIRED = _declare(
    "code_expired", 400,
    ja="確認コードの有効期限が切れました。「コードを再送」を押して新しいコードを受け取ってください。",
    en="This code has expired. Press “Send a new code” to get a new one.",
    about="the code is too old, used, or was never sent")
CODE_EXHAUSTED = _declare(
    "code_exhausted", 400,
    ja="確認コードの入力に続けて失敗したため、このコードは無効になりました。「コードを再送」を押して新しいコードを受け取ってください。",
    en="Too many wrong entries: this code no longer works. Press “Send a new code” to get a new one.",
    about="too many wrong entries: the code is void")
RESEND_TOO_SOON = _declare(
    "resend_too_soon", 429,
    ja="コードは{retry_after}秒後に再送できます。", en="You can ask for a new code in {retry_after} seconds.",
    about="a new code may be sent in `retry_after` seconds",
    extras=("retry_after",))
NOT_AUTHENTICATED = _declare(
    "not_authenticated", 401, ja="ログインしてください。", en="Please log in.",
    about="no logged-in session")
PASSKEY_REJECTED = _declare(
    "passkey_rejected", 401, ja="パスキーを確認できませんでした。もう一度お試しください。",
    en="We could not verify this passkey. Please try again.",
    about="the WebAuthn response parsed but failed a check",
    other_statuses={400: None},  # at registration, with the reason in the message:
    wordings={"passkey_registration_rejected": (
        "パスキーを登録できませんでした（{why}）。もう一度お試しください。",
        "The passkey could not be registered ({why}). Please try again.")})
UNKNOWN_CREDENTIAL = _declare(
    "unknown_credential", 401,
    ja="このパスキーは登録されていません。別のパスキーを選ぶか、お客様コードとパスワードでログインしてください。",
    en="This passkey is not registered with us. Choose another passkey, or log in with your customer code and "
       "password.",
    about="no passkey with this ID is known (`credential_id`); the page may tell the browser with "
          "PublicKeyCredential.signalUnknownCredential",
    extras=("credential_id",))
CEREMONY_EXPIRED = _declare(
    "ceremony_expired", 400, ja="手続きの有効期限が切れました。もう一度最初からお試しください。",
    en="This request has expired. Please start again.",
    about="the challenge is unknown, used, older than 5 minutes or issued to another session")
STEP_UP_REQUIRED = _declare(
    "step_up_required", 403,
    ja="この操作の前に、ご本人確認をもう一度お願いします。", en="Please confirm it is you again before doing this.",
    about="no verification within TOBIRA_STEP_UP_WINDOW: step up first",
    wordings={"step_up_passkey_required": (  # where an e-mailed code would not do
        "この操作の前に、登録済みのパスキーでご本人確認をお願いします（メールの確認コードでは行えません）。",
        "Please confirm it is you with one of your passkeys first (an e-mailed code cannot be used for this).")})
PASSKEY_REQUIRED = _declare(
    "passkey_required", 403, ja="この操作には、パスキーでのログインが必要です。パスキーでログインし直してください。",
    en="This needs a login with a passkey. Please log in again with your passkey.",
    about="only a passkey session may do important operations (TOBIRA_PASSKEY_MANDATORY_FROM)")
PASSKEY_ON_HOLD = _declare(
    "passkey_on_hold", 403,
    ja="このパスキーは新しく登録されたため、{hold_until_text}まではお取引・ご出金に使えません。お心当たりのない登録であれば、"
       "すぐにお客様サポートへご連絡ください。",
    en="This passkey was added recently: it cannot be used for trading or withdrawals until {hold_until_text}. "
       "If you did not add it, call customer support at once.",
    about="the session's passkey, or the one its step-up used, was added from a session that was not "
          "phishing-resistant and is on hold until `hold_until` (TOBIRA_NEW_PASSKEY_HOLD)",
    extras=("hold_until",))
PASSKEY_LIMIT_REACHED = _declare(
    "passkey_limit_reached", 409,
    ja="登録できるパスキーは{limit}個までです。新しく登録するには、使っていないパスキーを削除してください。",
    en="You can register up to {limit} passkeys. Delete one you no longer use to add another.",
    about="the customer has TOBIRA_MAX_PASSKEYS passkeys already")
EMAIL_REQUIRED = _declare(
    "email_required", 409,
    ja="パスキーを登録するには、メールアドレスの登録が必要です。お客様サポートへご連絡ください。",
    en="A registered e-mail address is needed before you can add a passkey. Please contact customer support.",
    about="the customer has no registered e-mail address")
CREDENTIAL_EXISTS = _declare(
    "credential_exists", 409, ja="このパスキーはすでに登録されています。", en="This passkey is already registered.",
    about="this credential is registered already")
NO_PASSKEY = _declare(
    "no_passkey", 409, ja="登録済みのパスキーがありません。メールの確認コードでご本人確認をしてください。",
    en="You have no passkey yet. Please confirm it is you with an e-mailed code.",
    about="the customer has no passkey to step up with")

# The staff console's (messages for staff, in the console's two languages too).
ENROLMENT_INVALID = _declare(
    "enrolment_invalid", 400, ja="登録コードが正しくないか、使用済みか、有効期限（24時間）が切れています。管理者に新しいコードを依頼してください。",
    en="The enrolment code is wrong, used, or older than 24 hours. Ask an admin for a new one.",
    about="a staff enrolment with an unknown name, or a wrong, used or expired code (the same answer for each)")
FORBIDDEN = _declare(
    "forbidden", 403, ja="この操作を行う権限がありません。", en="Your role does not allow this.",
    about="a support-desk staff member asked for what only an admin may do")
SAME_STAFF = _declare(
    "same_staff", 403, ja="ご自身の依頼は承認できません。別の担当者に承認を依頼してください。",
    en="You cannot approve your own request: another staff member must approve it.",
    about="the staff member who requested a reset or an e-mail change tried to approve it")
EXPIRED = _declare(
    "expired", 410, ja="この依頼は1時間の承認期限を過ぎたため無効です。必要であれば改めて依頼してください。",
    en="This request was not approved within the hour and is void. Request it again if it is still needed.",
    about="the request was not approved within an hour, or was approved already")


# --- raising them --------------------------------------------------------------------------------


class Refusal(Exception):
    """Any refusal a transaction may keep: what a `db.commits_refusals` function wrote before it
    refused is committed, then the refusal raised. The contract's own (ServiceError) and those
    answered in another protocol's words (oidc.OAuthError)."""


class ServiceError(Refusal):
    """A refusal with the contract's answer. A kind names its code in `declared`; a family of codes
    (Conflict, CodeRejected) is given the code's name when raised. `status` overrides the code's own
    status, and only with one the code declares (passkey_rejected at registration is 400)."""

    declared: ClassVar[ErrorCode | Answer | None] = None
    message_key: str | None = None  # which wording of the code the customer reads (None: the code's own)

    def __init__(self, code: str | None = None, *, status: int | None = None, reason: str | None = None,
                 **extra) -> None:
        declared = code_named(code) if code is not None else self.declared
        if declared is None:
            raise TypeError(f"{type(self).__name__} needs the name of an error code")
        answer = declared if isinstance(declared, Answer) else declared.at()
        if status is not None:
            answer = answer.error.at(status)
        missing = [name for name in answer.error.extras if name not in extra]
        if missing:
            raise TypeError(f"error code {answer.error.code} always carries {', '.join(missing)}")
        self.answer = answer
        self.code = answer.error.code
        self.status = answer.status
        # Why, for logs and security events only; never shown to the customer.
        self.reason = reason
        self.extra = extra
        super().__init__(self.code if reason is None else f"{self.code}: {reason}")

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        key = cls.__dict__.get("message_key")
        if isinstance(key, str):  # a kind with its own wording: it must be one of its code's
            declared = cls.declared
            if declared is None:
                raise TypeError(f"{cls.__name__} has a message_key but no declared code")
            (declared if isinstance(declared, ErrorCode) else declared.error).words(key)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "message_key" and isinstance(value, str):
            self.answer.error.words(value)  # ValueError for a wording its code does not have
        super().__setattr__(name, value)

    def contract_extras(self) -> dict:
        """The extra fields that go into the body: the code's own, never `field`, `why` or `limit`."""
        return {name: self.extra[name] for name in self.answer.error.extras}


class InvalidRequest(ServiceError):
    declared = INVALID_REQUEST


class InvalidField(ServiceError):
    declared = INVALID_FIELD


class UnsupportedMediaType(ServiceError):
    declared = UNSUPPORTED_MEDIA_TYPE


class InvalidCredentials(ServiceError):
    declared = INVALID_CREDENTIALS


class AccountLocked(ServiceError):
    declared = ACCOUNT_LOCKED


class NotAuthenticated(ServiceError):
    declared = NOT_AUTHENTICATED


class NoPendingLogin(ServiceError):
    declared = NO_PENDING_LOGIN


class CodeRejected(ServiceError):
    """code_invalid (with attempts_left), code_expired or code_exhausted."""


class ResendTooSoon(ServiceError):
    declared = RESEND_TOO_SOON


class NotFound(ServiceError):
    declared = NOT_FOUND


class MailUnavailable(ServiceError):
    declared = MAIL_UNAVAILABLE


class Unavailable(ServiceError):
    declared = UNAVAILABLE


class PasskeyRejected(ServiceError):
    """The response parsed but failed a check: 401 at login and step-up, 400 at registration."""

    declared = PASSKEY_REJECTED


class UnknownCredential(ServiceError):
    """The server definitely does not know this credential (the page may tell the browser so)."""

    declared = UNKNOWN_CREDENTIAL


class CeremonyExpired(ServiceError):
    declared = CEREMONY_EXPIRED


class StepUpRequired(ServiceError):
    declared = STEP_UP_REQUIRED


class Conflict(ServiceError):
    """passkey_limit_reached, email_required, credential_exists, no_passkey."""


class PasskeyRequired(ServiceError):
    declared = PASSKEY_REQUIRED


class StaffRefusal(ServiceError):
    """enrolment_invalid, forbidden, same_staff, expired."""


class PasskeyOnHold(ServiceError):
    """The session's passkey was registered from a session that was not phishing-resistant and is on
    hold until `hold_until` (an ISO time in the body)."""

    declared = PASSKEY_ON_HOLD


def refused(refusal) -> ServiceError:
    """The error for a policy.Refusal."""
    if refusal.reason == "passkey_required":
        return PasskeyRequired()
    if refusal.reason == "passkey_on_hold":
        return PasskeyOnHold(hold_until=refusal.hold_until.isoformat())
    return StepUpRequired()
