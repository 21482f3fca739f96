"""Passkeys as the customer sees them: names, providers, the list, rename and delete."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fido2.utils import websafe_encode

from . import devices, notices, policy, sessions, stepup, store, verify
from .config import Settings
from .db import Tx
from .errors import Conflict, InvalidField, NotFound
from .rows import CredentialRow

NAME_MAX = 64
# A name (after trimming) has a visible character and no control character (C0, DEL, C1). Also
# /openapi.json's pattern for the field, so written in what Python and ECMA-262 both read.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_NAME = re.compile(NAME_PATTERN)
_ZERO_AAGUID = "00000000-0000-0000-0000-000000000000"


@functools.lru_cache(maxsize=1)
def provider_names() -> dict[str, str]:
    """The community passkey-provider list shipped with Tobira (names only).

    The list may be retired and left empty one day: a missing or empty file means "no names
    known", never an error. It names passkeys for the customer; it is not a security signal.
    """
    try:
        data = json.loads((Path(__file__).parent / "aaguids.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k.lower(): v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and v.strip()}


def provider_of(aaguid: str) -> str | None:
    if not aaguid or aaguid == _ZERO_AAGUID:  # attestation "none" may zero it: unknown
        return None
    return provider_names().get(aaguid.lower())


def default_name(aaguid: str, transports: list[str], taken: set[str], lang: str) -> str:
    """The provider's name when known, else what kind of thing it seems to be; unique per customer."""
    base = provider_of(aaguid)
    if base is None:
        roaming = transports and set(transports) <= {"usb", "nfc", "ble", "smart-card"}
        if lang == "en":
            base = "Security key" if roaming else "Passkey"
        else:
            base = "セキュリティキー" if roaming else "パスキー"
    name, n = base, 2
    while name in taken:
        name, n = f"{base} ({n})", n + 1
    return name[:NAME_MAX]


def clean_name(raw: str) -> str | None:
    """A customer-chosen name: trimmed, runs of spaces joined, then NAME_PATTERN and NAME_MAX; None if unusable."""
    name = " ".join(raw.split())
    if len(name) > NAME_MAX or not _NAME.match(name):
        return None
    return name


def limit_refusal(count: int, settings: Settings) -> Conflict | None:
    """The passkey limit, the one place it is decided: a customer with `count` passkeys may add
    another unless this answers 409 passkey_limit_reached (TOBIRA_MAX_PASSKEYS). Registration asks
    it twice (for the options, and again under the customer's row lock); the passkeys page asks it
    to disable the add button."""
    if count >= settings.max_passkeys:
        return Conflict("passkey_limit_reached", limit=settings.max_passkeys)
    return None


@dataclass(frozen=True)
class PasskeyView:
    id: str
    name: str
    provider: str | None
    backup_eligible: bool
    synced: bool
    created_at: datetime
    last_used_at: datetime | None
    transports: list[str]
    hold_until: datetime | None  # None when not on hold (see policy.new_passkey_hold)

    def as_json(self) -> dict:
        return {
            "id": self.id, "name": self.name, "provider": self.provider, "backup_eligible": self.backup_eligible,
            "synced": self.synced, "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "transports": self.transports,
            "hold_until": self.hold_until.isoformat() if self.hold_until else None,
        }


def view(credential: CredentialRow, now: datetime) -> PasskeyView:
    """How the customer sees a passkey now (a hold that has ended is no hold)."""
    return PasskeyView(
        id=websafe_encode(credential.credential_id), name=credential.name, provider=provider_of(credential.aaguid),
        backup_eligible=credential.backup_eligible, synced=credential.backup_state,
        created_at=credential.created_at, last_used_at=credential.last_used_at,
        transports=[t for t in credential.transports.split(",") if t],
        hold_until=credential.hold_until if policy.on_hold(credential.hold_until, now) else None,
    )


def list_views(db: Tx, user_id: int, now: datetime) -> list[PasskeyView]:
    return [view(c, now) for c in store.credentials_of(db, user_id)]


def _raw_id(passkey_id: str) -> bytes | None:
    """The credential ID from its base64url form in a URL, or None when it cannot be one."""
    try:
        raw = verify.decode(passkey_id, "id")
    except verify.Malformed:
        return None
    return raw or None


async def rename(ctx, *, session, passkey_id: str, name: str, client) -> PasskeyView:
    clean = clean_name(name)
    if clean is None:
        raise InvalidField(reason=f"a passkey name is 1-{NAME_MAX} characters", field="name")
    raw = _raw_id(passkey_id)

    def save(db: Tx) -> PasskeyView:
        row = store.rename_credential(db, session.user_id, raw, clean) if raw else None
        if row is None:  # not theirs, or not at all: the same answer
            raise NotFound()
        store.add_event(db, kind="passkey_renamed", when=ctx.clock(), user_id=session.user_id, ip=client.ip,
                        user_agent=client.user_agent, name=clean)
        return view(row, ctx.clock())

    return await ctx.db.run(save)


async def delete(ctx, *, session, passkey_id: str, client) -> None:
    raw = _raw_id(passkey_id)

    def remove(db: Tx) -> None:
        now = ctx.clock()
        # Existence first, so a stranger's ID answers 404 whatever the step-up state.
        if raw is None or not any(c.credential_id == raw for c in store.credentials_of(db, session.customer_id)):
            raise NotFound()
        stepup.require_passkey_change_allowed(session, ctx.settings, now, has_passkey=True)
        row = store.delete_credential(db, session.customer_id, raw)
        if row is None:
            raise NotFound()
        devices.forget_all(db, session.customer_id)  # security.md 40: a passkey change revokes remembered PCs
        user = sessions.customer_of(db, session)
        notices.passkey_removed(db, ctx, user, row.name, provider_of(row.aaguid), client, now)

    await ctx.db.run(remove)
    ctx.outbox.wake()
