"""ServiceError and its kinds: each carries the contract's HTTP status and error code.

The domain raises these; the web layer turns them into `{"error": {"code", "message", ...}}`
with the message in the request's language (see i18n.py). `extra` holds the contract's extra
fields (attempts_left, retry_after, credential_id, hold_until).
"""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "invalid_request"

    message_key: str | None = None  # which i18n message to show, when not the one named by `code`

    def __init__(self, code: str | None = None, *, status: int | None = None, reason: str | None = None, **extra):
        self.code = code or self.code
        self.status = status or self.status
        # Why, for logs and security events only; never shown to the customer.
        self.reason = reason
        self.extra = extra
        super().__init__(self.code if reason is None else f"{self.code}: {reason}")


class InvalidRequest(ServiceError):
    status, code = 400, "invalid_request"


class InvalidField(ServiceError):
    status, code = 422, "invalid_request"


class InvalidCredentials(ServiceError):
    status, code = 401, "invalid_credentials"


class AccountLocked(ServiceError):
    status, code = 423, "account_locked"


class NotAuthenticated(ServiceError):
    status, code = 401, "not_authenticated"


class NoPendingLogin(ServiceError):
    status, code = 401, "no_pending_login"


class CodeRejected(ServiceError):
    """code_invalid (with attempts_left), code_expired or code_exhausted."""

    status = 400


class ResendTooSoon(ServiceError):
    status, code = 429, "resend_too_soon"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class MailUnavailable(ServiceError):
    status, code = 503, "mail_unavailable"


class Unavailable(ServiceError):
    status, code = 503, "unavailable"


class PasskeyRejected(ServiceError):
    """The response parsed but failed a check: 401 at login and step-up, 400 at registration."""

    status, code = 401, "passkey_rejected"


class UnknownCredential(ServiceError):
    """The server definitely does not know this credential (the page may tell the browser so)."""

    status, code = 401, "unknown_credential"


class CeremonyExpired(ServiceError):
    status, code = 400, "ceremony_expired"


class StepUpRequired(ServiceError):
    status, code = 403, "step_up_required"


class Conflict(ServiceError):
    """passkey_limit_reached, email_required, credential_exists, no_passkey."""

    status = 409


class PasskeyRequired(ServiceError):
    status, code = 403, "passkey_required"


class PasskeyOnHold(ServiceError):
    """The session's passkey was registered from a session that was not phishing-resistant and is on
    hold until `hold_until` (an ISO time in the body)."""

    status, code = 403, "passkey_on_hold"


def refused(refusal) -> ServiceError:
    """The error for a policy.Refusal."""
    if refusal.reason == "passkey_required":
        return PasskeyRequired()
    if refusal.reason == "passkey_on_hold":
        return PasskeyOnHold(hold_until=refusal.hold_until.isoformat())
    return StepUpRequired()
