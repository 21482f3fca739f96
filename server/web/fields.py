"""The limits of the JSON API's request fields, each declared once: the body models (web/bodies.py)
refuse a value past its limit (422 invalid_request), and /openapi.json shows them in the models' schemas.

These are caps on what is read at all. What a value may be is decided by the code that uses it
(login.CUSTOMER_CODE, passwords.PASSWORD_MAX, login.safe_next, passkeys.clean_name,
accounts.check_email), which is why most caps are far above the rule: past a cap the answer is 422,
below it the rule's own answer (a wrong password, a name that is too long)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from ..accounts import EMAIL_MAX
from ..sessions import NEXT_MAX

MAX_LENGTH: Mapping[str, int] = MappingProxyType({
    "customer_code": 256,
    "password": 1024,
    "next": NEXT_MAX,  # where to land after login
    "code": 64,  # 6 digits, but full-width digits and surrounding spaces are accepted
    "name": 1024,  # a passkey's name before trimming (passkeys.NAME_MAX after)
    "email": EMAIL_MAX,
    "staff_name": 64,  # staff.NAME
    "enrolment_code": 64,  # 16 characters in groups of four (staff.new_enrolment_code)
    "reason": 200,  # a ticket number or a sentence (support.check_reason)
    "action": 20,
})
