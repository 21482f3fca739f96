"""The OpenAPI 3.1 description of the JSON API, served at `GET /openapi.json`.

Written by hand from the contract (shared/api-contract.md) and from what server/web/api.py and
the middleware really answer; tests/test_openapi.py holds it to the route list and runs
schemathesis against a live server. The few things that depend on the configuration (the
allowed origins, the cookie names) are arguments, so the document is true for this instance.

Each operation below is one `_Op(...)`: its body, its success answer and the error codes its
handler raises. What every request can meet on its way in is added by `_Op.build`: the `Origin`
check on state-changing methods (403), the body limit (413), a body that is not a JSON object
(400; a string holding a lone surrogate too) or not JSON at all (415), a field its body model
refuses (422), and a database that does not answer (503). The components (schemas, shared error
answers) are openapi_components.py's.

Nothing here is a second copy of a fact: the error codes (their statuses, what each tells a client,
the extra fields each carries) are errors.py's; an operation only names which of them its handler
raises, and a code at a status it is not declared with fails at import. A request body is the
model its handler reads (web/bodies.py), shown as that model's JSON Schema; other limits and names
come from the code that enforces them (verify.b64_length, policy.IMPORTANT_OPERATIONS).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .errors import (ACCOUNT_LOCKED, CEREMONY_EXPIRED, CODE_EXHAUSTED, CODE_EXPIRED, CODE_INVALID, CREDENTIAL_EXISTS,
                     CSRF_REJECTED, EMAIL_REQUIRED, INVALID_CREDENTIALS, INVALID_FIELD, INVALID_REQUEST,
                     MAIL_UNAVAILABLE, NO_PASSKEY, NO_PENDING_LOGIN, NOT_AUTHENTICATED, NOT_FOUND, PASSKEY_LIMIT_REACHED,
                     PASSKEY_ON_HOLD, PASSKEY_REJECTED, PASSKEY_REQUIRED, PAYLOAD_TOO_LARGE, RATE_LIMITED,
                     RESEND_TOO_SOON, STEP_UP_REQUIRED, UNAVAILABLE, UNKNOWN_CREDENTIAL, UNSUPPORTED_MEDIA_TYPE, Answer,
                     ENROLMENT_INVALID, EXPIRED, FORBIDDEN, SAME_STAFF, ErrorCode)
from . import openapi_oauth
from .openapi_components import checked, components, error_or_ref, obj, ref
from .policy import IMPORTANT_OPERATIONS
from .sessions import SID_LENGTH
from .staff import ROLES
from .verify import MAX_CREDENTIAL_ID, b64_length
from .web.bodies import (Authorize, Body, CodeEntry, EmailChange, LoginOptions, NoBody, PasskeyRegistration,
                         PasskeyRename, PasswordLogin, RegistrationOptions, StaffAction, StaffEnrolment, StaffMember,
                         StepUpCode, required)

STATE_CHANGING = {"post", "put", "patch", "delete"}


def document(*, origins: tuple[str, ...], session_cookie: str, device_cookie: str,
             staff_cookie: str = "tobira_staff") -> dict:
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
                "as browsers send it. Every answer carries `Cache-Control: no-store`. The OpenID Connect "
                "endpoints (tag openid-connect) speak OAuth instead: form-encoded bodies and "
                '`{"error", "error_description"}` errors, as their specifications say.'),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "login", "description": "Customer code + password + e-mailed code, or a passkey"},
            {"name": "session", "description": "The logged-in browser"},
            {"name": "step-up", "description": "A fresh verification before a sensitive action"},
            {"name": "passkeys", "description": "The customer's passkeys"},
            {"name": "decisions", "description": "May this session do an important operation?"},
            {"name": "operations", "description": "Health checks and this document"},
            openapi_oauth.TAG,
            {"name": "staff-console", "description": "The support desk's console: staff passkeys, customers, "
                                                     "actions with a reason, two-person approvals, the audit trail"},
        ],
        "paths": {**_paths(origins, device_cookie), **openapi_oauth.paths()},
        "components": _with_staff(_with_oauth(components(session_cookie=session_cookie)), staff_cookie),
    }


def _with_staff(parts: dict, staff_cookie: str) -> dict:
    parts["securitySchemes"]["staffSession"] = {
        "type": "apiKey", "in": "cookie", "name": staff_cookie,
        "description": "A staff member's session (HttpOnly, SameSite=Strict; Secure and __Host- on https), set by "
                       "staff enrolment and sign-in: 15 minutes idle, 8 hours at most. A customer's session is none."}
    return parts


def _with_oauth(parts: dict) -> dict:
    parts["securitySchemes"].update(openapi_oauth.SECURITY_SCHEMES)
    parts["schemas"].update(openapi_oauth.schemas())
    return parts


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
    paths: dict[str, dict[str, Any]] = {
        # --- legacy login
        "/api/login/password": {"post": _Op(
            "login_password", "Step 1 of the legacy login: customer code and password", tag="login",
            session="optional", params=[device],
            body=PasswordLogin,
            ok={200: _json("A code was e-mailed, or (a trusted device) logged in",
                           {"oneOf": [ref("CodeSent"), ref("LoggedIn")]})},
            errors=[INVALID_CREDENTIALS, RATE_LIMITED, MAIL_UNAVAILABLE],
            description="Wrong password, unknown customer and a locked account (right password or not) answer "
                        "alike, with the same timing. Sets the session cookie (a pending login, or the new "
                        "session).")},
        "/api/login/code": {"post": _Op(
            "login_code", "Step 2 of the legacy login: the e-mailed 6-digit code", tag="login", session="required",
            body=CodeEntry,
            ok={200: _json("Logged in; sets the session cookie (and the trusted-device cookie when asked)",
                           ref("LoggedIn"))},
            errors=[CODE_INVALID, CODE_EXPIRED, CODE_EXHAUSTED, NO_PENDING_LOGIN, ACCOUNT_LOCKED, RATE_LIMITED])},
        "/api/login/code/resend": {"post": _Op(
            "login_code_resend", "Send a new code (the old one is void)", tag="login", session="required",
            body=NoBody,
            ok={200: _json("A new code was e-mailed", ref("CodeSent"))},
            errors=[NO_PENDING_LOGIN, ACCOUNT_LOCKED, RESEND_TOO_SOON, RATE_LIMITED, MAIL_UNAVAILABLE])},
        # --- passkey login
        "/api/login/passkey/options": {"post": _Op(
            "passkey_login_options", "Begin a usernameless passkey login", tag="login", session="optional",
            body=LoginOptions,
            ok={200: _json("Options for navigator.credentials.get(); sets a session cookie when there was none",
                           _public_key("LoginRequestOptions"))},
            errors=[RATE_LIMITED])},
        "/api/login/passkey/verify": {"post": _Op(
            "passkey_login_verify", "Finish a passkey login", tag="login", session="required",
            body=ref("AuthenticationResponseJSON"),
            ok={200: _json("Logged in; sets the session cookie", ref("LoggedIn"))},
            errors=[CEREMONY_EXPIRED, PASSKEY_REJECTED, UNKNOWN_CREDENTIAL, ACCOUNT_LOCKED, RATE_LIMITED],
            description="A response that cannot be parsed (shape, base64url, CBOR, sizes) is 400 "
                        "`invalid_request`; one that parses but fails a check is 401 `passkey_rejected`.")},
        # --- session
        "/api/session": {"get": _Op(
            "session_info", "Who is logged in, how, and since when", tag="session", session="required",
            ok={200: _json("The logged-in session", ref("Session"))},
            errors=[NOT_AUTHENTICATED])},
        "/api/logout": {"post": _Op(
            "logout", "Log out: the session ends for good (a trusted device stays)", tag="session",
            session="optional", body=NoBody,
            ok={204: {"description": "Logged out (also when there was no session); the cookie is cleared"}})},
        "/api/account/email": {"post": _Op(
            "change_email", "Change the customer's e-mail address (an important operation)", tag="session",
            session="required", body=EmailChange,
            ok={200: _json("Changed; the old address is told, trusted devices are forgotten",
                           obj({"status": {"const": "ok"}, "email": {"type": "string"}}, closed=True))},
            errors=[NOT_AUTHENTICATED, PASSKEY_REQUIRED, PASSKEY_ON_HOLD, STEP_UP_REQUIRED])},
        "/api/account/unlock-password": {"post": _Op(
            "unlock_password", "Lift the automatic lock on password sign-in (needs a recent passkey step-up)",
            tag="session", session="required", body=NoBody,
            ok={200: _json("`unlocked`: whether a lock was lifted; an event and an e-mail when it was",
                           obj({"status": {"const": "ok"}, "unlocked": {"type": "boolean"}}, closed=True))},
            errors=[NOT_AUTHENTICATED, STEP_UP_REQUIRED, ACCOUNT_LOCKED],
            description="A fresh passkey login counts as the step-up; an e-mailed code does not. A support hold "
                        "is lifted by the support desk only (423).")},
        # --- step-up
        "/api/step-up/code/send": {"post": _Op(
            "step_up_code_send", "E-mail a step-up code", tag="step-up", session="required", body=NoBody,
            ok={200: _json("A code was e-mailed", ref("CodeSent"))},
            errors=[NOT_AUTHENTICATED, ACCOUNT_LOCKED, RESEND_TOO_SOON, RATE_LIMITED, MAIL_UNAVAILABLE])},
        "/api/step-up/code": {"post": _Op(
            "step_up_code", "Step up with the e-mailed code", tag="step-up", session="required",
            body=StepUpCode,
            ok={200: _json("Verified; the session gets a new id (new cookie)", ref("SteppedUp"))},
            errors=[CODE_INVALID, CODE_EXPIRED, CODE_EXHAUSTED, NOT_AUTHENTICATED, ACCOUNT_LOCKED, RATE_LIMITED])},
        "/api/step-up/passkey/options": {"post": _Op(
            "step_up_passkey_options", "Begin a passkey step-up", tag="step-up", session="required", body=NoBody,
            ok={200: _json("Options for navigator.credentials.get(), listing the customer's passkeys",
                           _public_key("StepUpRequestOptions"))},
            errors=[NOT_AUTHENTICATED, NO_PASSKEY])},
        "/api/step-up/passkey/verify": {"post": _Op(
            "step_up_passkey_verify", "Finish a passkey step-up", tag="step-up", session="required",
            body=ref("AuthenticationResponseJSON"),
            ok={200: _json("Verified; the session gets a new id (new cookie)", ref("SteppedUp"))},
            errors=[CEREMONY_EXPIRED, NOT_AUTHENTICATED, PASSKEY_REJECTED, RATE_LIMITED],
            description="Another customer's passkey is 401 `passkey_rejected`, like a bad signature.")},
        # --- passkey management
        "/api/passkeys": {"get": _Op(
            "passkey_list", "The customer's passkeys, oldest first", tag="passkeys", session="required",
            ok={200: _json("The passkeys and the limit", obj(
                {"passkeys": {"type": "array", "items": ref("Passkey")},
                 "limit": {"type": "integer", "minimum": 0, "description": "TOBIRA_MAX_PASSKEYS"}}, closed=True))},
            errors=[NOT_AUTHENTICATED])},
        "/api/passkeys/register/options": {"post": _Op(
            "passkey_register_options", "Begin registering a passkey (needs a recent step-up)", tag="passkeys",
            session="required", body=RegistrationOptions,
            ok={200: _json("Options for navigator.credentials.create()", _public_key("CreationOptions"))},
            errors=[NOT_AUTHENTICATED, STEP_UP_REQUIRED, PASSKEY_LIMIT_REACHED, EMAIL_REQUIRED])},
        "/api/passkeys/register/verify": {"post": _Op(
            "passkey_register_verify", "Finish registering a passkey", tag="passkeys", session="required",
            body=PasskeyRegistration,
            ok={201: _json("Registered", obj({"passkey": ref("Passkey")}, closed=True))},
            errors=[CEREMONY_EXPIRED, PASSKEY_REJECTED.at(400), NOT_AUTHENTICATED, PASSKEY_LIMIT_REACHED,
                    CREDENTIAL_EXISTS],
            description="A `credential` that cannot be parsed is 400 `invalid_request`; one that parses but fails "
                        "a check is 400 `passkey_rejected`, with the reason in `message`.")},
        "/api/passkeys/{passkey_id}": {
            "parameters": [passkey_id],
            "patch": _Op(
                "passkey_rename", "Rename a passkey", tag="passkeys", session="required",
                body=PasskeyRename,
                ok={200: _json("Renamed", obj({"passkey": ref("Passkey")}, closed=True))},
                errors=[NOT_AUTHENTICATED, NOT_FOUND]),
            "delete": _Op(
                "passkey_delete", "Delete a passkey (needs a recent step-up)", tag="passkeys", session="required",
                reads_body=True,
                ok={204: {"description": "Deleted; the customer is told by e-mail"}},
                errors=[NOT_AUTHENTICATED, STEP_UP_REQUIRED, NOT_FOUND]),
        },
        # --- where the customer is signed in
        "/api/sessions": {"get": _Op(
            "session_list", "The customer's live sessions (this one marked) and remembered PCs", tag="session",
            session="required", ok={200: _json("Where the customer is signed in", ref("SignedIn"))},
            errors=[NOT_AUTHENTICATED])},
        "/api/sessions/end-others": {"post": _Op(
            "sessions_end_others", "Sign out everywhere else: every session but this one ends", tag="session",
            session="required", body=NoBody, ok={204: {"description": "Ended"}}, errors=[NOT_AUTHENTICATED])},
        "/api/sessions/{session_id}": {
            "parameters": [{"name": "session_id", "in": "path", "required": True,
                            "description": "A session's `id` from GET /api/sessions",
                            "schema": {"type": "string", "pattern": f"^[A-Za-z0-9_-]{{{SID_LENGTH}}}$"}}],
            "delete": _Op(
                "session_end", "End one of the customer's sessions (this one: a logout)", tag="session",
                session="required", reads_body=True, ok={204: {"description": "Ended"}},
                errors=[NOT_AUTHENTICATED, NOT_FOUND])},
        "/api/trusted-devices/{device_id}": {
            "parameters": [{"name": "device_id", "in": "path", "required": True,
                            "description": "A remembered PC's `id` from GET /api/sessions",
                            "schema": {"type": "string", "maxLength": 18}}],
            "delete": _Op(
                "trusted_device_forget", "Forget a remembered PC: its next login asks for the code", tag="session",
                session="required", reads_body=True, ok={204: {"description": "Forgotten"}},
                errors=[NOT_AUTHENTICATED, NOT_FOUND])},
        # --- decisions for other services
        "/api/authorize": {"post": _Op(
            "authorize", "May this session do an important operation now?", tag="decisions", session="required",
            body=Authorize,
            ok={200: _json("Allowed", ref("Allowed"))},
            errors=[NOT_AUTHENTICATED, PASSKEY_REQUIRED, PASSKEY_ON_HOLD, STEP_UP_REQUIRED],
            description="When several apply, `passkey_required` wins, then `passkey_on_hold`, then "
                        "`step_up_required`.")},
        "/auth/check": {"get": _Op(
            "auth_check", "Forward auth (nginx auth_request, Traefik forwardAuth)", tag="decisions",
            session="required", params=[operation],
            ok={200: {"description": "Allowed: who it is, in headers; no body", "headers": {
                "X-Tobira-Customer": {"required": True, "schema": {"type": "string"},
                                      "description": "The customer code"},
                "X-Tobira-Auth-Method": {"required": True, "schema": ref("AuthMethod")}}}},
            errors=[NOT_AUTHENTICATED, PASSKEY_REQUIRED, PASSKEY_ON_HOLD, STEP_UP_REQUIRED, INVALID_FIELD],
            description="The same rules as POST /api/authorize; without `operation` a live session is enough.")},
        # --- for load balancers and tools
        "/healthz": {"get": _Op(
            "healthz", "The process is up", tag="operations", uses_database=False,
            ok={200: _json("Up", ref("StatusOk"))})},
        "/readyz": {"get": _Op(
            "readyz", "Ready for traffic: the database answers", tag="operations",
            ok={200: _json("Ready", ref("StatusOk"))})},
        "/openapi.json": {"get": _Op(
            "openapi", "This document", tag="operations", uses_database=False,
            ok={200: _json("OpenAPI 3.1", {"type": "object"})})},
    }
    paths.update(_admin_paths())
    return {path: {key: value.build(key, origin) if isinstance(value, _Op) else value for key, value in item.items()}
            for path, item in paths.items()}


def _admin_paths() -> dict[str, dict[str, Any]]:
    """/api/admin: every answer also 404 `not_found` from outside TOBIRA_ADMIN_NETWORKS."""
    text = {"type": "string"}
    staff_member = obj({"name": text, "role": {"enum": list(ROLES)}}, closed=True)
    code_param = {"name": "code", "in": "path", "required": True, "description": "A customer code",
                  "schema": {"type": "string", "maxLength": 256}}
    page = {"name": "page", "in": "query", "required": False, "description": "Page number from 0",
            "schema": {"type": "string", "pattern": "^[0-9]{1,6}$"}}
    outside = "Every answer is 404 `not_found` from an address outside TOBIRA_ADMIN_NETWORKS."
    op = functools.partial(_Op, tag="staff-console", description=outside)
    listing = {"type": "array", "items": {"type": "object"}}
    return {
        "/api/admin/enrol/options": {"post": op(
            "admin_enrol_options", "Begin a staff member's passkey enrolment with their one-time code", body=StaffEnrolment,
            ok={200: _json("Options for navigator.credentials.create() (no hints: a security key or this device)",
                           obj({"publicKey": {"type": "object"}}, closed=True))},
            errors=[ENROLMENT_INVALID, NOT_FOUND])},
        "/api/admin/enrol/verify": {"post": op(
            "admin_enrol_verify", "Finish the enrolment: the passkey is registered and a staff session starts",
            body=ref("RegistrationResponseJSON"), ok={201: _json("Enrolled and signed in", staff_member)},
            errors=[CEREMONY_EXPIRED, PASSKEY_REJECTED.at(400), CREDENTIAL_EXISTS, NOT_FOUND])},
        "/api/admin/login/options": {"post": op(
            "admin_login_options", "Begin a staff sign-in (usernameless, passkey only)", body=NoBody,
            ok={200: _json("Options for navigator.credentials.get()", obj({"publicKey": {"type": "object"}}, closed=True))},
            errors=[RATE_LIMITED, NOT_FOUND])},
        "/api/admin/login/verify": {"post": op(
            "admin_login_verify", "Finish a staff sign-in", body=ref("AuthenticationResponseJSON"),
            ok={200: _json("Signed in", staff_member)},
            errors=[CEREMONY_EXPIRED, PASSKEY_REJECTED, RATE_LIMITED, NOT_FOUND])},
        "/api/admin/logout": {"post": op(
            "admin_logout", "End this staff session", body=NoBody, ok={204: {"description": "Signed out"}},
            errors=[NOT_FOUND])},
        "/api/admin/session": {"get": op(
            "admin_session", "Who is signed in to the console", session="staff",
            ok={200: _json("The staff member", staff_member)}, errors=[NOT_AUTHENTICATED, NOT_FOUND])},
        "/api/admin/customers": {"get": op(
            "admin_customers", "Find customers by code or e-mail", session="staff",
            params=[{"name": "q", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 254}},
                    page],
            ok={200: _json("Matches", obj({"customers": listing}, closed=True))},
            errors=[NOT_AUTHENTICATED, INVALID_FIELD, NOT_FOUND])},
        "/api/admin/customers/{code}": {"parameters": [code_param], "get": op(
            "admin_customer", "One customer, as the desk sees them (the look is recorded)", session="staff",
            ok={200: _json("The customer", {"type": "object"})}, errors=[NOT_AUTHENTICATED, NOT_FOUND])},
        "/api/admin/customers/{code}/actions": {"parameters": [code_param], "post": op(
            "admin_customer_action", "Act on a customer, with a reason", session="staff", body=StaffAction,
            ok={200: _json("Done", obj({"status": {"const": "done"}}, closed=True)),
                202: _json("Requested: a second staff member approves it",
                           obj({"status": {"const": "pending_approval"}, "request_id": text}, closed=True))},
            errors=[NOT_AUTHENTICATED, NOT_FOUND])},
        "/api/admin/approvals": {"get": op(
            "admin_approvals", "Requests waiting for a second staff member", session="staff", params=[page],
            ok={200: _json("Pending requests", obj({"requests": listing}, closed=True))},
            errors=[NOT_AUTHENTICATED, INVALID_FIELD, NOT_FOUND])},
        "/api/admin/approvals/{request_id}": {
            "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": op("admin_approve", "Approve another staff member's request: it is done now", session="staff",
                       body=NoBody, ok={200: _json("Done", obj({"status": {"const": "done"}}, closed=True))},
                       errors=[NOT_AUTHENTICATED, SAME_STAFF, EXPIRED, NOT_FOUND])},
        "/api/admin/audit": {"get": op(
            "admin_audit", "The audit trail, newest first (admins)", session="staff",
            params=[{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in ("staff", "customer", "action", "format")]
                   + [{"name": n, "in": "query", "required": False, "description": "A JST day, both included",
                       "schema": {"type": "string", "format": "date"}} for n in ("from", "to")] + [page],
            ok={200: {"description": "Entries (JSON), or CSV with ?format=csv", "content": {
                "application/json": {"schema": obj({"entries": listing}, closed=True)},
                "text/csv": {"schema": {"type": "string"}}}}},
            errors=[NOT_AUTHENTICATED, FORBIDDEN, INVALID_FIELD, NOT_FOUND])},
        "/api/admin/staff": {"post": op(
            "admin_staff_add", "Add a staff member (admins); the answer shows their enrolment code once",
            session="staff", body=StaffMember,
            ok={201: _json("Added", obj({"name": text, "role": text, "enrolment_code": text}, closed=True))},
            errors=[NOT_AUTHENTICATED, FORBIDDEN, NOT_FOUND])},
        "/api/admin/staff/{name}/disable": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": op("admin_staff_disable", "Disable a staff member (admins): their sessions end at once",
                       session="staff", body=NoBody, ok={200: _json("Done", obj({"status": {"const": "done"}}))},
                       errors=[NOT_AUTHENTICATED, FORBIDDEN, NOT_FOUND])},
        "/api/admin/staff/{name}/reset-passkeys": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": op("admin_staff_reset_passkeys", "Remove a staff member's passkeys (admins); a new enrolment code",
                       session="staff", body=NoBody,
                       ok={200: _json("Reset", obj({"name": text, "enrolment_code": text}, closed=True))},
                       errors=[NOT_AUTHENTICATED, FORBIDDEN, NOT_FOUND])},
    }


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
    body: type[Body] | dict | None = None  # the model its handler reads, or a schema (a WebAuthn response)
    params: list = field(default_factory=list)
    description: str | None = None
    reads_body: bool = False  # reads a body it does not describe (DELETE)
    uses_database: bool = True

    def __post_init__(self) -> None:
        self.answers = [checked(item) for item in self.errors]

    def build(self, method: str, origin: dict) -> dict:
        errors: dict[int, list[Answer]] = {}
        for answer in self.answers:
            errors.setdefault(answer.status, []).append(answer)
        parameters = [ref("lang", kind="parameters"), *self.params]
        if method in STATE_CHANGING:  # web/middleware.py Gate, before routing
            parameters.append(origin)
            errors.setdefault(403, []).insert(0, CSRF_REJECTED.at())
        if self.body is not None or self.reads_body:  # web/api.py read_json
            errors.setdefault(400, []).insert(0, INVALID_REQUEST.at())
            errors[415] = [UNSUPPORTED_MEDIA_TYPE.at()]
        model = self.body if isinstance(self.body, type) else None
        if model is not None and model.model_fields:  # web/bodies.py parse
            errors.setdefault(422, []).insert(0, INVALID_FIELD)
        errors[413] = [PAYLOAD_TOO_LARGE.at()]  # web/middleware.py Gate, before routing
        if self.uses_database:
            errors.setdefault(503, []).insert(0, UNAVAILABLE.at())
        operation: dict[str, Any] = {"tags": [self.tag], "summary": self.summary, "operationId": self.operation_id}
        if self.description:
            operation["description"] = self.description
        operation["parameters"] = parameters
        if self.body is not None:
            schema = ref(model.__name__) if model is not None else self.body
            operation["requestBody"] = {"required": model is None or required(model),
                                        "content": {"application/json": {"schema": schema}}}
        operation["security"] = {"required": [{"session": []}], "optional": [{}, {"session": []}],
                                 "staff": [{"staffSession": []}]}.get(self.session or "", [])
        operation["responses"] = {**{str(status): response for status, response in self.ok.items()},
                                  **{str(status): error_or_ref(errors[status]) for status in sorted(errors)}}
        return operation


# --- building blocks --------------------------------------------------------------------------


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _public_key(options: str) -> dict:
    return obj({"publicKey": ref(options)}, closed=True)

