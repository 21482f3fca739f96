"""The OpenAPI 3.1 description of the JSON API, served at `GET /openapi.json`.

Written by hand from the contract (shared/api-contract.md) and from what server/web/api.py and
the middleware really answer; tests/test_openapi.py holds it to the route list and runs
schemathesis against a live server. The few things that depend on the configuration (the
allowed origins, the cookie names) are arguments, so the document is true for this instance.

Each operation below is one `_Op(...)`: its body, its success answer and the error codes its
handler raises. What every request can meet on its way in is added by `_Op.build`: the `Origin`
check on state-changing methods (403), the body limit (413), a body that is not a JSON object
(400; a string holding a lone surrogate too) or not JSON at all (415), and a database that does
not answer (503).

Nothing here is a second copy of a fact: the error codes (their statuses, what each tells a client,
the extra fields each carries) are errors.py's; an operation only names which of them its handler
raises, and a code at a status it is not declared with fails at import. Limits, patterns and names
come from the code that enforces them (web/fields.MAX_LENGTH, verify.CAPS and b64_length,
passkeys.NAME_MAX and NAME_PATTERN, accounts.EMAIL_PATTERN, policy.IMPORTANT_OPERATIONS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from .accounts import EMAIL_PATTERN
from .errors import (ACCOUNT_LOCKED, CEREMONY_EXPIRED, CODE_EXHAUSTED, CODE_EXPIRED, CODE_INVALID, CREDENTIAL_EXISTS,
                     CSRF_REJECTED, EMAIL_REQUIRED, INVALID_CREDENTIALS, INVALID_FIELD, INVALID_REQUEST,
                     MAIL_UNAVAILABLE, NO_PASSKEY, NO_PENDING_LOGIN, NOT_AUTHENTICATED, NOT_FOUND, PASSKEY_LIMIT_REACHED,
                     PASSKEY_ON_HOLD, PASSKEY_REJECTED, PASSKEY_REQUIRED, PAYLOAD_TOO_LARGE, RATE_LIMITED,
                     RESEND_TOO_SOON, STATUSES, STEP_UP_REQUIRED, UNAVAILABLE, UNKNOWN_CREDENTIAL,
                     UNSUPPORTED_MEDIA_TYPE, Answer, ErrorCode)
from .passkeys import NAME_MAX, NAME_PATTERN
from .policy import IMPORTANT_OPERATIONS
from .verify import CAPS, MAX_CREDENTIAL_ID, TRANSPORTS, b64_length
from .web.fields import MAX_LENGTH

STATE_CHANGING = {"post", "put", "patch", "delete"}

# The schemas of the contract's extra fields, inside `error` (which code carries which: errors.py).
EXTRAS = {
    "attempts_left": {"type": "integer", "minimum": 0, "description": "wrong entries the code still allows"},
    "retry_after": {"type": "integer", "minimum": 1, "description": "seconds to wait (also in Retry-After)"},
    "credential_id": {"$ref": "#/components/schemas/Base64URL"},
    "hold_until": {"type": "string", "format": "date-time", "description": "when the passkey's hold ends"},
}

BASE64URL = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"}

# accounts.check_email's rule, after trimming; `\s*` either side because the server trims first.
EMAIL_FIELD = {"type": "string", "maxLength": MAX_LENGTH["email"], "pattern": rf"^\s*(?:{EMAIL_PATTERN})\s*$"}


def document(*, origins: tuple[str, ...], session_cookie: str, device_cookie: str) -> dict:
    """The whole OpenAPI document for an instance with these origins and cookie names."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tobira",
            "version": _version(),
            "description": (
                "The JSON API of Tobira, a passkey (WebAuthn) relying party. JSON in and out; binary values "
                "are base64url without padding, in the WebAuthn Level 3 JSON forms. Every error is "
                '`{"error": {"code", "message", ...}}` with the message in the request\'s language '
                "(`?lang=en` or an English Accept-Language; Japanese otherwise). State-changing requests "
                "must carry an `Origin` header equal to a configured origin (else 403 `csrf_rejected`), "
                "as browsers send it. Every answer carries `Cache-Control: no-store`."),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "login", "description": "Customer code + password + e-mailed code, or a passkey"},
            {"name": "session", "description": "The logged-in browser"},
            {"name": "step-up", "description": "A fresh verification before a sensitive action"},
            {"name": "passkeys", "description": "The customer's passkeys"},
            {"name": "decisions", "description": "May this session do an important operation?"},
            {"name": "operations", "description": "Health checks and this document"},
        ],
        "paths": _paths(origins, device_cookie),
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": session_cookie,
                            "description": "The session cookie (HttpOnly, SameSite=Lax; Secure and __Host- on "
                                           "https), set by the login answers. Also carries a pending login "
                                           "and the anonymous session a passkey login is bound to."},
            },
            "responses": {name: _error_response(answers) for name, answers in SHARED_ERRORS.items()},
            "parameters": {"lang": {
                "name": "lang", "in": "query", "required": False, "schema": {"type": "string"},
                "description": "`en` or `ja`: the language of error messages (any other value is ignored; "
                               "then Accept-Language decides, else Japanese)"}},
            "schemas": _schemas(),
        },
    }


def _version() -> str:
    try:
        return version("tobira")
    except PackageNotFoundError:
        return "0"


# --- the operations ---------------------------------------------------------------------------


def _paths(origins: tuple[str, ...], device_cookie: str) -> dict:
    origin = {"name": "Origin", "in": "header", "required": True,
              "description": "The page's origin, as browsers send it; one of TOBIRA_ORIGIN.",
              "schema": {"type": "string", "enum": list(origins)}}
    device = {"name": device_cookie, "in": "cookie", "required": False,
              "description": "The trusted-device cookie (\"remember this PC\"): skips the e-mailed code.",
              "schema": {"type": "string"}}
    operation = {"name": "operation", "in": "query", "required": False,
                 "description": "An important operation; without it only a live session is asked for.",
                 "schema": {"type": "string", "enum": list(IMPORTANT_OPERATIONS)}}
    passkey_id = {"name": "passkey_id", "in": "path", "required": True,
                  "description": "The credential ID (base64url), as `id` in the passkey list.",
                  "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$",
                             "maxLength": b64_length(MAX_CREDENTIAL_ID)}}
    next_path = _string("next", nullable=True, description="A same-origin path to land on after login")
    code = _string("code", description="6 digits; full-width digits and spaces are accepted")
    paths = {
        # --- legacy login
        "/api/login/password": {"post": _Op(
            "login_password", "Step 1 of the legacy login: customer code and password", tag="login",
            session="optional", params=[device],
            body=_object({"customer_code": _string("customer_code"), "password": _string("password")},
                         optional={"next": next_path}),
            ok={200: _json("A code was e-mailed, or (a trusted device) logged in",
                           {"oneOf": [_ref("CodeSent"), _ref("LoggedIn")]})},
            errors=[INVALID_CREDENTIALS, INVALID_FIELD, RATE_LIMITED, MAIL_UNAVAILABLE],
            description="Wrong password, unknown customer and a locked account (right password or not) answer "
                        "alike, with the same timing. Sets the session cookie (a pending login, or the new "
                        "session).")},
        "/api/login/code": {"post": _Op(
            "login_code", "Step 2 of the legacy login: the e-mailed 6-digit code", tag="login", session="required",
            body=_object({"code": code}, optional={"remember_device": {"type": "boolean", "default": False}}),
            ok={200: _json("Logged in; sets the session cookie (and the trusted-device cookie when asked)",
                           _ref("LoggedIn"))},
            errors=[CODE_INVALID, CODE_EXPIRED, CODE_EXHAUSTED, NO_PENDING_LOGIN, INVALID_FIELD, ACCOUNT_LOCKED,
                    RATE_LIMITED])},
        "/api/login/code/resend": {"post": _Op(
            "login_code_resend", "Send a new code (the old one is void)", tag="login", session="required",
            body=BODILESS,
            ok={200: _json("A new code was e-mailed", _ref("CodeSent"))},
            errors=[NO_PENDING_LOGIN, ACCOUNT_LOCKED, RESEND_TOO_SOON, RATE_LIMITED, MAIL_UNAVAILABLE])},
        # --- passkey login
        "/api/login/passkey/options": {"post": _Op(
            "passkey_login_options", "Begin a usernameless passkey login", tag="login", session="optional",
            body=_object({}, optional={"next": next_path}), body_required=False,
            ok={200: _json("Options for navigator.credentials.get(); sets a session cookie when there was none",
                           _public_key("LoginRequestOptions"))},
            errors=[INVALID_FIELD, RATE_LIMITED])},
        "/api/login/passkey/verify": {"post": _Op(
            "passkey_login_verify", "Finish a passkey login", tag="login", session="required",
            body=_ref("AuthenticationResponseJSON"),
            ok={200: _json("Logged in; sets the session cookie", _ref("LoggedIn"))},
            errors=[CEREMONY_EXPIRED, PASSKEY_REJECTED, UNKNOWN_CREDENTIAL, ACCOUNT_LOCKED, RATE_LIMITED],
            description="A response that cannot be parsed (shape, base64url, CBOR, sizes) is 400 "
                        "`invalid_request`; one that parses but fails a check is 401 `passkey_rejected`.")},
        # --- session
        "/api/session": {"get": _Op(
            "session_info", "Who is logged in, how, and since when", tag="session", session="required",
            ok={200: _json("The logged-in session", _ref("Session"))},
            errors=[NOT_AUTHENTICATED])},
        "/api/logout": {"post": _Op(
            "logout", "Log out: the session ends for good (a trusted device stays)", tag="session",
            session="optional", body=BODILESS,
            ok={204: {"description": "Logged out (also when there was no session); the cookie is cleared"}})},
        "/api/account/email": {"post": _Op(
            "change_email", "Change the customer's e-mail address (an important operation)", tag="session",
            session="required", body=_object({"email": EMAIL_FIELD}),
            ok={200: _json("Changed; the old address is told, trusted devices are forgotten",
                           _object({"status": {"const": "ok"}, "email": {"type": "string"}}, closed=True))},
            errors=[NOT_AUTHENTICATED, PASSKEY_REQUIRED, PASSKEY_ON_HOLD, STEP_UP_REQUIRED, INVALID_FIELD])},
        "/api/account/unlock-password": {"post": _Op(
            "unlock_password", "Lift the automatic lock on password sign-in (needs a recent passkey step-up)",
            tag="session", session="required", body=BODILESS,
            ok={200: _json("`unlocked`: whether a lock was lifted; an event and an e-mail when it was",
                           _object({"status": {"const": "ok"}, "unlocked": {"type": "boolean"}}, closed=True))},
            errors=[NOT_AUTHENTICATED, STEP_UP_REQUIRED, ACCOUNT_LOCKED],
            description="A fresh passkey login counts as the step-up; an e-mailed code does not. A support hold "
                        "is lifted by the support desk only (423).")},
        # --- step-up
        "/api/step-up/code/send": {"post": _Op(
            "step_up_code_send", "E-mail a step-up code", tag="step-up", session="required", body=BODILESS,
            ok={200: _json("A code was e-mailed", _ref("CodeSent"))},
            errors=[NOT_AUTHENTICATED, ACCOUNT_LOCKED, RESEND_TOO_SOON, RATE_LIMITED, MAIL_UNAVAILABLE])},
        "/api/step-up/code": {"post": _Op(
            "step_up_code", "Step up with the e-mailed code", tag="step-up", session="required",
            body=_object({"code": code}),
            ok={200: _json("Verified; the session gets a new id (new cookie)", _ref("SteppedUp"))},
            errors=[CODE_INVALID, CODE_EXPIRED, CODE_EXHAUSTED, NOT_AUTHENTICATED, INVALID_FIELD, ACCOUNT_LOCKED,
                    RATE_LIMITED])},
        "/api/step-up/passkey/options": {"post": _Op(
            "step_up_passkey_options", "Begin a passkey step-up", tag="step-up", session="required", body=BODILESS,
            ok={200: _json("Options for navigator.credentials.get(), listing the customer's passkeys",
                           _public_key("StepUpRequestOptions"))},
            errors=[NOT_AUTHENTICATED, NO_PASSKEY])},
        "/api/step-up/passkey/verify": {"post": _Op(
            "step_up_passkey_verify", "Finish a passkey step-up", tag="step-up", session="required",
            body=_ref("AuthenticationResponseJSON"),
            ok={200: _json("Verified; the session gets a new id (new cookie)", _ref("SteppedUp"))},
            errors=[CEREMONY_EXPIRED, NOT_AUTHENTICATED, PASSKEY_REJECTED, RATE_LIMITED],
            description="Another customer's passkey is 401 `passkey_rejected`, like a bad signature.")},
        # --- passkey management
        "/api/passkeys": {"get": _Op(
            "passkey_list", "The customer's passkeys, oldest first", tag="passkeys", session="required",
            ok={200: _json("The passkeys and the limit", _object(
                {"passkeys": {"type": "array", "items": _ref("Passkey")},
                 "limit": {"type": "integer", "minimum": 0, "description": "TOBIRA_MAX_PASSKEYS"}}, closed=True))},
            errors=[NOT_AUTHENTICATED])},
        "/api/passkeys/register/options": {"post": _Op(
            "passkey_register_options", "Begin registering a passkey (needs a recent step-up)", tag="passkeys",
            session="required", body=BODILESS,
            ok={200: _json("Options for navigator.credentials.create()", _public_key("CreationOptions"))},
            errors=[NOT_AUTHENTICATED, STEP_UP_REQUIRED, PASSKEY_LIMIT_REACHED, EMAIL_REQUIRED])},
        "/api/passkeys/register/verify": {"post": _Op(
            "passkey_register_verify", "Finish registering a passkey", tag="passkeys", session="required",
            body=_object({"credential": _ref("RegistrationResponseJSON")}, optional={"name": _string(
                "name", nullable=True, description=f"Up to {NAME_MAX} characters after trimming; without a usable "
                                                 "one the passkey is named after its provider")}),
            ok={201: _json("Registered", _object({"passkey": _ref("Passkey")}, closed=True))},
            errors=[CEREMONY_EXPIRED, PASSKEY_REJECTED.at(400), NOT_AUTHENTICATED, PASSKEY_LIMIT_REACHED,
                    CREDENTIAL_EXISTS, INVALID_FIELD],
            description="A `credential` that cannot be parsed is 400 `invalid_request`; one that parses but fails "
                        "a check is 400 `passkey_rejected`, with the reason in `message`.")},
        "/api/passkeys/{passkey_id}": {
            "parameters": [passkey_id],
            "patch": _Op(
                "passkey_rename", "Rename a passkey", tag="passkeys", session="required",
                body=_object({"name": {
                    "type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": NAME_PATTERN,
                    "description": f"1-{NAME_MAX} characters after trimming and joining runs of spaces; "
                                   "no control characters"}}),
                ok={200: _json("Renamed", _object({"passkey": _ref("Passkey")}, closed=True))},
                errors=[NOT_AUTHENTICATED, NOT_FOUND, INVALID_FIELD]),
            "delete": _Op(
                "passkey_delete", "Delete a passkey (needs a recent step-up)", tag="passkeys", session="required",
                reads_body=True,
                ok={204: {"description": "Deleted; the customer is told by e-mail"}},
                errors=[NOT_AUTHENTICATED, STEP_UP_REQUIRED, NOT_FOUND]),
        },
        # --- decisions for other services
        "/api/authorize": {"post": _Op(
            "authorize", "May this session do an important operation now?", tag="decisions", session="required",
            body=_object({"operation": {"type": "string", "enum": list(IMPORTANT_OPERATIONS)}}),
            ok={200: _json("Allowed", _ref("Allowed"))},
            errors=[NOT_AUTHENTICATED, PASSKEY_REQUIRED, PASSKEY_ON_HOLD, STEP_UP_REQUIRED, INVALID_FIELD],
            description="When several apply, `passkey_required` wins, then `passkey_on_hold`, then "
                        "`step_up_required`.")},
        "/auth/check": {"get": _Op(
            "auth_check", "Forward auth (nginx auth_request, Traefik forwardAuth)", tag="decisions",
            session="required", params=[operation],
            ok={200: {"description": "Allowed: who it is, in headers; no body", "headers": {
                "X-Tobira-Customer": {"required": True, "schema": {"type": "string"},
                                      "description": "The customer code"},
                "X-Tobira-Auth-Method": {"required": True, "schema": _ref("AuthMethod")}}}},
            errors=[NOT_AUTHENTICATED, PASSKEY_REQUIRED, PASSKEY_ON_HOLD, STEP_UP_REQUIRED, INVALID_FIELD],
            description="The same rules as POST /api/authorize; without `operation` a live session is enough.")},
        # --- for load balancers and tools
        "/healthz": {"get": _Op(
            "healthz", "The process is up", tag="operations", uses_database=False,
            ok={200: _json("Up", _ref("StatusOk"))})},
        "/readyz": {"get": _Op(
            "readyz", "Ready for traffic: the database answers", tag="operations",
            ok={200: _json("Ready", _ref("StatusOk"))})},
        "/openapi.json": {"get": _Op(
            "openapi", "This document", tag="operations", uses_database=False,
            ok={200: _json("OpenAPI 3.1", {"type": "object"})})},
    }
    return {path: {key: value.build(key, origin) if isinstance(value, _Op) else value for key, value in item.items()}
            for path, item in paths.items()}


# The bodiless POSTs (contract: "accept an empty body or {}"): any JSON object, ignored.
BODILESS = {"type": "object", "description": "Ignored: send nothing or `{}`"}


@dataclass
class _Op:
    """One operation: what its handler answers. `build` adds what every request of its kind can
    meet on the way in, before the handler runs."""

    operation_id: str  # the handler's name in server/web/api.py
    summary: str
    tag: str
    ok: dict  # status -> response
    errors: list[ErrorCode | Answer] = field(default_factory=list)  # what the handler raises (errors.py)
    session: str | None = None  # "required" | "optional"
    body: dict | None = None
    body_required: bool = True
    params: list = field(default_factory=list)
    description: str | None = None
    reads_body: bool = False  # reads a body it does not describe (DELETE)
    uses_database: bool = True

    def __post_init__(self) -> None:
        self.errors = [_answer(item) for item in self.errors]

    def build(self, method: str, origin: dict) -> dict:
        errors: dict[int, list[Answer]] = {}
        for answer in self.errors:
            errors.setdefault(answer.status, []).append(answer)
        parameters = [_ref("lang", kind="parameters"), *self.params]
        if method in STATE_CHANGING:  # web/middleware.py Gate, before routing
            parameters.append(origin)
            errors.setdefault(403, []).insert(0, CSRF_REJECTED.at())
        if self.body is not None or self.reads_body:  # web/api.py read_json
            errors.setdefault(400, []).insert(0, INVALID_REQUEST.at())
            errors[415] = [UNSUPPORTED_MEDIA_TYPE.at()]
        errors[413] = [PAYLOAD_TOO_LARGE.at()]  # web/middleware.py Gate, before routing
        if self.uses_database:
            errors.setdefault(503, []).insert(0, UNAVAILABLE.at())
        operation = {"tags": [self.tag], "summary": self.summary, "operationId": self.operation_id}
        if self.description:
            operation["description"] = self.description
        operation["parameters"] = parameters
        if self.body is not None:
            operation["requestBody"] = {"required": self.body_required and self.body is not BODILESS,
                                        "content": {"application/json": {"schema": self.body}}}
        operation["security"] = {"required": [{"session": []}],
                                 "optional": [{}, {"session": []}]}.get(self.session, [])
        operation["responses"] = {**{str(status): response for status, response in self.ok.items()},
                                  **{str(status): _error_or_ref(errors[status]) for status in sorted(errors)}}
        return operation


# Error answers shared by many operations, in components/responses.
SHARED_ERRORS: dict[str, list[Answer]] = {
    "BadRequest": [INVALID_REQUEST.at()],
    "NotAuthenticated": [NOT_AUTHENTICATED.at()],
    "CsrfRejected": [CSRF_REJECTED.at()],
    "PayloadTooLarge": [PAYLOAD_TOO_LARGE.at()],
    "UnsupportedMediaType": [UNSUPPORTED_MEDIA_TYPE.at()],
    "InvalidField": [INVALID_FIELD],
    "Unavailable": [UNAVAILABLE.at()],
}


def _answer(item: ErrorCode | Answer) -> Answer:
    """An operation's error: a code at its own status, or at another it is declared with."""
    answer = item.at() if isinstance(item, ErrorCode) else item
    for name in answer.error.extras:
        if name not in EXTRAS:
            raise ValueError(f"error code {answer.error.code} carries {name}, which EXTRAS does not describe")
    return answer


def _error_or_ref(answers: list[Answer]) -> dict:
    for name, shared in SHARED_ERRORS.items():
        if shared == answers:
            return _ref(name, kind="responses")
    return _error_response(answers)


# --- building blocks --------------------------------------------------------------------------


def _ref(name: str, *, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _string(name: str, *, nullable: bool = False, description: str | None = None) -> dict:
    """The request field `name`: a string of at most its web/fields.MAX_LENGTH."""
    schema = {"type": ["string", "null"] if nullable else "string", "maxLength": MAX_LENGTH[name]}
    if description:
        schema["description"] = description
    return schema


def _object(required: dict, *, optional: dict | None = None, closed: bool = False) -> dict:
    """An object schema. Request bodies stay open: the server ignores fields it does not know."""
    schema = {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}
    if not schema["required"]:
        del schema["required"]
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _public_key(options: str) -> dict:
    return _object({"publicKey": _ref(options)}, closed=True)


def _error_response(answers: list[Answer]) -> dict:
    """The contract's error body for these codes (all at one status), each with the extras it always carries."""
    (status,) = {answer.status for answer in answers}
    by_extras: dict[tuple[str, ...], list[Answer]] = {}
    for answer in answers:
        by_extras.setdefault(answer.error.extras, []).append(answer)
    variants = [_error_body([a.error.code for a in group], extras) for extras, group in by_extras.items()]
    described = "; ".join(f"`{a.error.code}`: {a.about}" for group in by_extras.values() for a in group)
    response = {
        "description": f"{STATUSES[status]}: {described}",
        "content": {"application/json": {"schema": variants[0] if len(variants) == 1 else {"oneOf": variants}}},
    }
    if any("retry_after" in extras for extras in by_extras):
        response["headers"] = {"Retry-After": {"required": True, "description": "Seconds, as `retry_after`",
                                               "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return response


def _error_body(codes: list[str], extras: tuple[str, ...] = ()) -> dict:
    return {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {
            "type": "object", "required": ["code", "message", *extras], "additionalProperties": False,
            "properties": {"code": {"type": "string", "enum": codes},
                           "message": {"type": "string", "description": "For people, in the request's language"},
                           **{name: EXTRAS[name] for name in extras}}}},
    }


# --- schemas ----------------------------------------------------------------------------------


def _b64(field: str, description: str, *, min_length: int = 0) -> dict:
    """Binary in base64url, capped as server/verify.py caps `field` before decoding anything (the
    server also takes the standard alphabet and padding: real browsers sent both).

    Spelled out rather than `allOf: [Base64URL]`: the same meaning, and schemathesis generates
    boundary values for it in milliseconds instead of minutes.
    """
    schema = {**BASE64URL, "maxLength": b64_length(CAPS[field]), "description": description}
    if min_length:
        schema["minLength"] = min_length
    return schema


def _schemas() -> dict:
    date_time = {"type": "string", "format": "date-time"}
    descriptor = _object({"type": {"const": "public-key"}, "id": _ref("Base64URL")},
                         optional={"transports": {"type": "array", "items": {"type": "string"}}})
    return {
        "Base64URL": {**BASE64URL, "description": "base64url without padding (RFC 4648 §5)"},  # what the server sends
        "AuthMethod": {"type": "string", "enum": ["passkey", "email_code", "trusted_device"]},
        "StatusOk": _object({"status": {"const": "ok"}}, closed=True),
        "CodeSent": _object({"status": {"const": "code_sent"}}, closed=True),
        "LoggedIn": _object({"status": {"const": "ok"},
                             "redirect": {"type": "string", "pattern": "^/(?!/)",
                                          "description": "A same-origin path: /account unless the login "
                                                         "started elsewhere on the site"}}, closed=True),
        "SteppedUp": _object({"status": {"const": "ok"}, "verified_at": date_time}, closed=True),
        "Allowed": _object({"allowed": {"const": True}, "customer_code": {"type": "string"},
                            "auth_method": _ref("AuthMethod")}, closed=True),
        "Session": _object({
            "customer_code": {"type": "string"},
            "display_name": {"type": "string"},
            "auth_method": _ref("AuthMethod"),
            "authenticated_at": date_time,
            "verified_at": {"type": ["string", "null"], "format": "date-time",
                            "description": "The last code, passkey or step-up; not a trusted-device login"},
            "important_operations_allowed": {"type": "boolean",
                                             "description": "The passkey rule only; freshness is verified_at"},
            "important_operations_reason": {"enum": [None, "passkey_required", "passkey_on_hold"]},
            "hold_until": {"type": ["string", "null"], "format": "date-time",
                           "description": "With passkey_on_hold: when the hold of the login's passkey ends"},
            "passkey_count": {"type": "integer", "minimum": 0},
        }, closed=True),
        "Passkey": _object({
            "id": _ref("Base64URL"),
            "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
            "provider": {"type": ["string", "null"],
                         "description": "From the authenticator's AAGUID (the community list shipped with Tobira)"},
            "backup_eligible": {"type": "boolean"},
            "synced": {"type": "boolean", "description": "The backup-state flag"},
            "created_at": date_time,
            "last_used_at": {"type": ["string", "null"], "format": "date-time"},
            "transports": {"type": "array", "items": {"type": "string", "enum": sorted(TRANSPORTS)}},
            "hold_until": {"type": ["string", "null"], "format": "date-time",
                           "description": "Until when the passkey is on hold (TOBIRA_NEW_PASSKEY_HOLD); null: none"},
        }, closed=True),
        # What the server sends: python-fido2's WebAuthn Level 3 JSON forms (open: the spec grows).
        "CreationOptions": _object({
            "rp": _object({"id": {"type": "string"}, "name": {"type": "string"}}),
            "user": _object({"id": _ref("Base64URL"), "name": {"type": "string"}, "displayName": {"type": "string"}}),
            "challenge": _ref("Base64URL"),
            "pubKeyCredParams": {"type": "array", "items": _object({"type": {"const": "public-key"},
                                                                     "alg": {"type": "integer"}})},
            "timeout": {"type": "integer"},
            "excludeCredentials": {"type": "array", "items": descriptor,
                                   "description": "The customer's passkeys"},
            "authenticatorSelection": _object({"residentKey": {"const": "required"},
                                               "userVerification": {"const": "required"}},
                                              optional={"requireResidentKey": {"const": True}}),
            "attestation": {"const": "none"},
        }),
        "LoginRequestOptions": _object({
            "challenge": _ref("Base64URL"), "timeout": {"type": "integer"}, "rpId": {"type": "string"},
            "userVerification": {"const": "required"},
            "allowCredentials": {"type": "array", "maxItems": 0, "description": "Empty: usernameless"},
        }),
        "StepUpRequestOptions": _object({
            "challenge": _ref("Base64URL"), "timeout": {"type": "integer"}, "rpId": {"type": "string"},
            "userVerification": {"const": "required"},
            "allowCredentials": {"type": "array", "minItems": 1, "items": descriptor},
        }),
        # What the server accepts: PublicKeyCredential.prototype.toJSON(). Only the fields the server
        # reads are required; the others (clientExtensionResults, authenticatorAttachment, ...) are ignored.
        "RegistrationResponseJSON": _object({
            "id": _b64("id", "The credential ID; must equal rawId and the attested one; over 1023 bytes is refused"),
            "rawId": _b64("id", "The credential ID"),
            "type": {"const": "public-key"},
            "response": _object({
                "clientDataJSON": _b64("clientDataJSON", "CollectedClientData, UTF-8 JSON"),
                "attestationObject": _b64("attestationObject", "CBOR; attestation format \"none\" is asked for"),
            }, optional={"transports": {"type": "array", "items": {"type": "string"},
                                        "description": "Kept when among " + ", ".join(sorted(TRANSPORTS))}}),
        }, optional={"clientExtensionResults": {"type": "object"}, "authenticatorAttachment": {"type": "string"}}),
        "AuthenticationResponseJSON": _object({
            "id": _b64("id", "The credential ID; must equal rawId"),
            "rawId": _b64("id", "The credential ID"),
            "type": {"const": "public-key"},
            "response": _object({
                "clientDataJSON": _b64("clientDataJSON", "CollectedClientData, UTF-8 JSON"),
                "authenticatorData": _b64("authenticatorData", "The authenticator data"),
                "signature": _b64("signature", "The assertion signature", min_length=1),
            }, optional={"userHandle": {"anyOf": [_b64("userHandle", "The user handle: required for a passkey login"),
                                                  {"type": "null"}]}}),
        }, optional={"clientExtensionResults": {"type": "object"}, "authenticatorAttachment": {"type": "string"}}),
    }
