"""The components of /openapi.json (server/openapi.py): the schemas of what the API sends and
accepts, and the contract's error answers.

Nothing here is a second copy of a fact: the error codes (statuses, descriptions, extra fields) are
errors.py's; the request bodies are web/bodies.py's models; the WebAuthn shapes' caps are
verify.CAPS and b64_length; a passkey's name is passkeys.NAME_MAX's.
"""

from __future__ import annotations

from typing import Any

from .errors import (CSRF_REJECTED, INVALID_FIELD, INVALID_REQUEST, NOT_AUTHENTICATED, PAYLOAD_TOO_LARGE, STATUSES,
                     UNAVAILABLE, UNSUPPORTED_MEDIA_TYPE, Answer, ErrorCode)
from .passkeys import NAME_MAX
from .verify import CAPS, TRANSPORTS, b64_length
from .web import bodies


def components(*, session_cookie: str) -> dict:
    """components/: the session cookie (named as this instance names it), the shared error answers,
    the `lang` parameter and the schemas."""
    return {
        "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": session_cookie,
                        "description": "The session cookie (HttpOnly, SameSite=Lax; Secure and __Host- on "
                                       "https), set by the login answers. Also carries a pending login "
                                       "and the anonymous session a passkey login is bound to."},
        },
        "responses": {name: error_response(answers) for name, answers in SHARED_ERRORS.items()},
        "parameters": {"lang": {
            "name": "lang", "in": "query", "required": False, "schema": {"type": "string"},
            "description": "`en` or `ja`: the language of error messages (any other value is ignored; "
                           "then Accept-Language decides, else Japanese)"}},
        "schemas": schemas(),
    }


# --- building blocks --------------------------------------------------------------------------


def ref(name: str, *, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def obj(required: dict, *, optional: dict | None = None, closed: bool = False) -> dict:
    """An object schema (the request bodies are web/bodies.py's models)."""
    schema: dict[str, Any] = {"type": "object", "required": list(required),
                              "properties": {**required, **(optional or {})}}
    if not schema["required"]:
        del schema["required"]
    if closed:
        schema["additionalProperties"] = False
    return schema


# --- error answers ----------------------------------------------------------------------------

# The schemas of the contract's extra fields, inside `error` (which code carries which: errors.py).
EXTRAS = {
    "attempts_left": {"type": "integer", "minimum": 0, "description": "wrong entries the code still allows"},
    "retry_after": {"type": "integer", "minimum": 1, "description": "seconds to wait (also in Retry-After)"},
    "credential_id": {"$ref": "#/components/schemas/Base64URL"},
    "hold_until": {"type": "string", "format": "date-time", "description": "when the passkey's hold ends"},
}

BASE64URL = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"}

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


def checked(item: ErrorCode | Answer) -> Answer:
    """An operation's error: a code at its own status, or at another it is declared with."""
    answer = item.at() if isinstance(item, ErrorCode) else item
    for name in answer.error.extras:
        if name not in EXTRAS:
            raise ValueError(f"error code {answer.error.code} carries {name}, which EXTRAS does not describe")
    return answer


def error_or_ref(answers: list[Answer]) -> dict:
    for name, shared in SHARED_ERRORS.items():
        if shared == answers:
            return ref(name, kind="responses")
    return error_response(answers)


def error_response(answers: list[Answer]) -> dict:
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

# accounts.check_email's rule, after trimming; `\s*` either side because the server trims first.


def _hints(description: str) -> dict:
    return {"type": "array", "items": {"enum": ["client-device", "hybrid", "security-key"]},
            "description": f"WebAuthn L3 hints: {description}"}


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


def schemas() -> dict:
    """components/schemas: the answers' and the WebAuthn shapes' here, the request bodies' from web/bodies.py."""
    own = _answers_and_webauthn()
    models = bodies.schemas()
    clash = set(own) & set(models)
    if clash:
        raise ValueError(f"schema names declared twice: {sorted(clash)}")
    return {**own, **models}


def _answers_and_webauthn() -> dict:
    date_time = {"type": "string", "format": "date-time"}
    descriptor = obj({"type": {"const": "public-key"}, "id": ref("Base64URL")},
                     optional={"transports": {"type": "array", "items": {"type": "string"}}})
    return {
        "Base64URL": {**BASE64URL, "description": "base64url without padding (RFC 4648 §5)"},  # what the server sends
        "AuthMethod": {"type": "string", "enum": ["passkey", "email_code", "trusted_device"]},
        "StatusOk": obj({"status": {"const": "ok"}}, closed=True),
        "CodeSent": obj({"status": {"const": "code_sent"}}, closed=True),
        "LoggedIn": obj({"status": {"const": "ok"},
                         "redirect": {"type": "string", "pattern": "^/(?!/)",
                                      "description": "A same-origin path: /account unless the login "
                                                     "started elsewhere on the site"}}, closed=True),
        "SteppedUp": obj({"status": {"const": "ok"}, "verified_at": date_time}, closed=True),
        "Allowed": obj({"allowed": {"const": True}, "customer_code": {"type": "string"},
                        "auth_method": ref("AuthMethod")}, closed=True),
        "Session": obj({
            "customer_code": {"type": "string"},
            "display_name": {"type": "string"},
            "auth_method": ref("AuthMethod"),
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
        "Passkey": obj({
            "id": ref("Base64URL"),
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
        "CreationOptions": obj({
            "rp": obj({"id": {"type": "string"}, "name": {"type": "string"}}),
            "user": obj({"id": ref("Base64URL"), "name": {"type": "string"}, "displayName": {"type": "string"}}),
            "challenge": ref("Base64URL"),
            "pubKeyCredParams": {"type": "array", "items": obj({"type": {"const": "public-key"},
                                                                 "alg": {"type": "integer"}})},
            "timeout": {"type": "integer"},
            "excludeCredentials": {"type": "array", "items": descriptor,
                                   "description": "The customer's passkeys"},
            "authenticatorSelection": obj({"residentKey": {"const": "required"},
                                           "userVerification": {"const": "required"}},
                                          optional={"requireResidentKey": {"const": True},
                                                    "authenticatorAttachment": {"const": "cross-platform"}}),
            "attestation": {"const": "none"},
            "hints": _hints("client-device: this device first; security-key: a roaming key"),
        }),
        "SignedIn": obj({
            "sessions": {"type": "array", "items": obj({
                "id": {"type": "string"}, "current": {"type": "boolean"}, "browser": {"type": "string"},
                "ip": {"type": ["string", "null"]}, "created_at": date_time, "last_seen_at": date_time}, closed=True)},
            "trusted_devices": {"type": "array", "items": obj({
                "id": {"type": "string"}, "browser": {"type": "string"}, "created_at": date_time,
                "expires_at": date_time}, closed=True)},
        }, closed=True),
        "LoginRequestOptions": obj({
            "challenge": ref("Base64URL"), "timeout": {"type": "integer"}, "rpId": {"type": "string"},
            "userVerification": {"const": "required"},
            "allowCredentials": {"type": "array", "maxItems": 0, "description": "Empty: usernameless"},
            "hints": _hints("client-device, then hybrid (a phone nearby)"),
        }),
        "StepUpRequestOptions": obj({
            "challenge": ref("Base64URL"), "timeout": {"type": "integer"}, "rpId": {"type": "string"},
            "userVerification": {"const": "required"},
            "allowCredentials": {"type": "array", "minItems": 1, "items": descriptor},
            "hints": _hints("client-device"),
        }),
        # What the server accepts: PublicKeyCredential.prototype.toJSON(). Only the fields the server
        # reads are required; the others (clientExtensionResults, authenticatorAttachment, ...) are ignored.
        "RegistrationResponseJSON": obj({
            "id": _b64("id", "The credential ID; must equal rawId and the attested one; over 1023 bytes is refused"),
            "rawId": _b64("id", "The credential ID"),
            "type": {"const": "public-key"},
            "response": obj({
                "clientDataJSON": _b64("clientDataJSON", "CollectedClientData, UTF-8 JSON"),
                "attestationObject": _b64("attestationObject", "CBOR; attestation format \"none\" is asked for"),
            }, optional={"transports": {"type": "array", "items": {"type": "string"},
                                        "description": "Kept when among " + ", ".join(sorted(TRANSPORTS))}}),
        }, optional={"clientExtensionResults": {"type": "object"}, "authenticatorAttachment": {"type": "string"}}),
        "AuthenticationResponseJSON": obj({
            "id": _b64("id", "The credential ID; must equal rawId"),
            "rawId": _b64("id", "The credential ID"),
            "type": {"const": "public-key"},
            "response": obj({
                "clientDataJSON": _b64("clientDataJSON", "CollectedClientData, UTF-8 JSON"),
                "authenticatorData": _b64("authenticatorData", "The authenticator data"),
                "signature": _b64("signature", "The assertion signature", min_length=1),
            }, optional={"userHandle": {"anyOf": [_b64("userHandle", "The user handle: required for a passkey login"),
                                                  {"type": "null"}]}}),
        }, optional={"clientExtensionResults": {"type": "object"}, "authenticatorAttachment": {"type": "string"}}),
    }
