"""Security events in the customer's words (for /account/activity)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..rows import EventRow
from .texts import TEXTS, translate

_METHOD_KEYS = {"email_code": "method.email_code_short", "password": "method.password",
                "passkey": "method.passkey", "trusted_device": "method.trusted_device"}


@dataclass(frozen=True)
class ActivityRow:
    kind: str
    when: datetime
    text: str
    ip: str | None


def describe(event: EventRow, lang: str) -> ActivityRow:
    detail: Any = json.loads(event.detail) if event.detail else {}  # JSON: whatever the event recorded
    return ActivityRow(event.kind, event.created_at, text_of(event.kind, detail, lang), event.ip)


def text_of(kind: str, detail: Any, lang: str) -> str:
    """An event in plain words (the customer's activity page, the staff console's customer page)."""
    values = {
        "method": translate(_METHOD_KEYS.get(detail.get("method"), "method.password"), lang),
        "name": detail.get("name", ""),
        "operation": translate(f"operation.{detail.get('operation')}", lang)
        if f"operation.{detail.get('operation')}" in TEXTS else detail.get("operation", ""),
        "action": translate(f"support_action.{detail.get('action')}", lang)
        if f"support_action.{detail.get('action')}" in TEXTS else "",
    }
    key = f"event.{kind}"
    if detail.get("actor") == "support" and f"{key}.support" in TEXTS:  # the desk did it, not the customer
        key = f"{key}.support"
    return translate(key if key in TEXTS else "event.other", lang, **values)
