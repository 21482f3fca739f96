"""The JSON API's request bodies, one typed model each: web/api.py reads a body into its model
(`parse`) and /openapi.json shows the model's JSON Schema (`schemas`).

The models check what the edge checks, and nothing more: each field's JSON type (strictly: a
number is no string, "true" no boolean) and its cap (fields.MAX_LENGTH); an unknown member is
ignored. What a value may be is decided by the code that uses it (login.CUSTOMER_CODE, the code
check, passkeys.clean_name, accounts.check_email): a well-typed customer code of the wrong shape is
a failed login (401), not a 422. The schema still tells clients those rules (`rule`), read from
where they are declared. The one exception is the operation, a closed list (policy.ImportantOperation).

WebAuthn responses are no model: server/verify.py parses them (its caps and checks are the real
validation), and /openapi.json describes them as RegistrationResponseJSON and
AuthenticationResponseJSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError, WithJsonSchema,
                      model_validator)

from ..accounts import EMAIL_PATTERN
from ..errors import InvalidField
from ..passkeys import NAME_MAX, NAME_PATTERN
from ..policy import ImportantOperation
from ..staff import Role
from ..support import Action, clean_reason
from .fields import MAX_LENGTH

COMPONENTS = "#/components/schemas/{model}"
# Stands for a $ref to one of openapi's own schemas until `schemas` writes it (pydantic resolves
# every $ref it meets among its own definitions while it generates).
_COMPONENT = "x-tobira-component"


def _text(name: str, *, description: str | None = None, rule: dict | None = None) -> Any:
    """The string field `name`, at most its fields.MAX_LENGTH; `rule`: what the schema adds to tell
    clients the rule the server applies after the edge."""
    return Field(max_length=MAX_LENGTH[name], description=description, json_schema_extra=rule)


class Body(BaseModel):
    """A JSON object; members it does not name are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, hide_input_in_errors=True)


class NoBody(Body):
    """Ignored: send nothing or `{}`"""


class PasswordLogin(Body):
    """Step 1 of the legacy login."""

    customer_code: Annotated[StrictStr, _text("customer_code")]
    password: Annotated[StrictStr, _text("password")]
    next: Annotated[StrictStr, _text("next")] | None = Field(
        None, description="A same-origin path to land on after login")


Code = Annotated[StrictStr, _text("code", description="6 digits; full-width digits and spaces are accepted")]


class CodeEntry(Body):
    """Step 2 of the legacy login: the e-mailed one-time code, as entered."""

    code: Code
    remember_device: StrictBool = Field(False, description="Trust this browser: later logins skip the code")


class StepUpCode(Body):
    """A step-up with the e-mailed one-time code, as entered."""

    code: Code


class LoginOptions(Body):
    """Where a passkey login lands afterwards."""

    next: Annotated[StrictStr, _text("next")] | None = Field(
        None, description="A same-origin path to land on after login")


class RegistrationOptions(Body):
    """What kind of passkey to make."""

    authenticator: Literal["security-key"] | None = Field(
        None, description='"security-key": a roaming key (hints ["security-key"], cross-platform), '
                          "from the management page's second button; without it, this device first")
    mediation: Literal["conditional"] | None = Field(
        None, description='"conditional": the automatic upgrade right after a code login (a conditional create): '
                          'userVerification "preferred", and only this ceremony accepts a passkey made without '
                          "user presence")

    @model_validator(mode="after")
    def _one_kind(self) -> "RegistrationOptions":
        # A conditional create is the password manager's; a security key is never made that way.
        if self.authenticator and self.mediation:
            raise ValueError('"authenticator" and "mediation" cannot be asked for together')
        return self


class PasskeyRegistration(Body):
    """A new passkey: the browser's PublicKeyCredential.toJSON(), and a name."""

    # Parsed by verify.parse_registration, not here: only "an object" at this edge.
    credential: Annotated[dict[str, Any], WithJsonSchema({_COMPONENT: "RegistrationResponseJSON"})]
    name: Annotated[StrictStr, _text("name")] | None = Field(
        None, description=f"Up to {NAME_MAX} characters after trimming; without a usable one the passkey is named "
                          "after its provider")


class PasskeyRename(Body):
    """A passkey's new name."""

    # The cap is MAX_LENGTH's; passkeys.clean_name decides (422 outside 1-NAME_MAX after trimming).
    name: Annotated[StrictStr, _text(
        "name", description=f"1-{NAME_MAX} characters after trimming and joining runs of spaces; no control "
                            "characters",
        rule={"minLength": 1, "maxLength": NAME_MAX, "pattern": NAME_PATTERN})]


class Authorize(Body):
    """An important operation to be decided."""

    operation: ImportantOperation


class EmailChange(Body):
    """The customer's new e-mail address."""

    # accounts.check_email decides, after trimming (hence `\s*` either side).
    email: Annotated[StrictStr, _text("email", rule={"pattern": rf"^\s*(?:{EMAIL_PATTERN})\s*$"})]


class StaffEnrolment(Body):
    """A staff member's first (or renewed) passkey: their name and the one-time enrolment code."""

    name: Annotated[StrictStr, _text("staff_name")]
    enrolment_code: Annotated[StrictStr, _text("enrolment_code")]


class StaffMember(Body):
    """A new staff member (an admin adds them; they enrol with the code the answer shows once)."""

    name: Annotated[StrictStr, _text("staff_name")]
    role: Role


class StaffAction(Body):
    """What the staff member does to the customer, and why."""

    action: Action
    reason: Annotated[StrictStr, _text("reason", description="A ticket number or a sentence; not blank",
                                       rule={"pattern": r"\S"})]
    email: Annotated[StrictStr, _text("email")] | None = Field(None, description="The new address (set-email only)")

    @model_validator(mode="after")
    def _reason_and_email(self) -> "StaffAction":
        if clean_reason(self.reason) is None:
            raise ValueError("a reason is 1-200 visible characters (no control or format characters)")
        if (self.action == "set-email") != (self.email is not None):
            raise ValueError('"email" goes with set-email, and only with it')
        return self


BODIES: tuple[type[Body], ...] = (NoBody, PasswordLogin, CodeEntry, StepUpCode, LoginOptions, PasskeyRegistration,
                                  PasskeyRename, Authorize, EmailChange, StaffEnrolment, StaffMember, StaffAction)

B = TypeVar("B", bound=Body)


def parse(model: type[B], body: dict) -> B:
    """The body (read_json's object) as `model`; a missing, ill-typed or too long field is 422."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        name = ".".join(str(part) for part in first["loc"])
        # The reason goes to the log: pydantic's message names the rule, never the value.
        raise InvalidField(reason=f"{name}: {first['msg']}", field=name) from None


def required(model: type[Body]) -> bool:
    """Whether a body must be sent at all (a model with a required field)."""
    return any(info.is_required() for info in model.model_fields.values())


def schemas() -> dict[str, dict]:
    """Each model's JSON Schema (2020-12, as OpenAPI 3.1 takes it), by name, for components/schemas."""
    out = {}
    for model in BODIES:
        schema = model.model_json_schema(ref_template=COMPONENTS)
        properties = schema.get("properties", {})
        for name, prop in properties.items():
            prop.pop("title", None)  # "Customer Code": the member's own name says it
            if _COMPONENT in prop:
                properties[name] = {"$ref": COMPONENTS.format(model=prop[_COMPONENT])}
            else:
                properties[name] = _nullable(prop)
        out[model.__name__] = schema
    return out


def _nullable(prop: dict) -> dict:
    """pydantic's `anyOf: [{type: T, ...}, {type: null}]` for an optional field, as 3.1's shorter
    `type: [T, "null"]` (the same meaning)."""
    variants = prop.get("anyOf", [])
    if len(variants) != 2 or variants[1] != {"type": "null"} or not isinstance(variants[0].get("type"), str):
        return prop
    rest = {key: value for key, value in prop.items() if key != "anyOf"}
    return {**variants[0], **rest, "type": [variants[0]["type"], "null"]}
