"""The options of each ceremony, as python-fido2's Fido2Server makes them, with what it does not
set: WebAuthn L3 hints (§5.8.7). Browsers that do not know hints ignore them."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import timedelta
from typing import Sequence

from fido2.server import Fido2Server
from fido2.webauthn import (AttestationConveyancePreference, AuthenticatorAttachment, AuthenticatorTransport,
                            CredentialCreationOptions, CredentialRequestOptions, PublicKeyCredentialDescriptor,
                            PublicKeyCredentialHint, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
                            PublicKeyCredentialType, PublicKeyCredentialUserEntity, ResidentKeyRequirement,
                            UserVerificationRequirement)

from . import verify
from .config import Settings
from .rows import CredentialRow, StaffCredentialRow, StaffRow, UserRow

CEREMONY_TTL = timedelta(minutes=5)

# The customer's own device first; at login a phone nearby (hybrid) next; "Add a security key" asks
# for a roaming key only.
LOGIN_HINTS = (PublicKeyCredentialHint.CLIENT_DEVICE, PublicKeyCredentialHint.HYBRID)
OWN_DEVICE = (PublicKeyCredentialHint.CLIENT_DEVICE,)
SECURITY_KEY = (PublicKeyCredentialHint.SECURITY_KEY,)


@functools.lru_cache(maxsize=8)
def _server(rp_id: str, rp_name: str) -> Fido2Server:
    server = Fido2Server(PublicKeyCredentialRpEntity(id=rp_id, name=rp_name),
                         attestation=AttestationConveyancePreference.NONE)
    # fido2 initialises `self.timeout = None` without an annotation, so its inferred type is None; it is
    # passed on as the options' `timeout: int | None`, so an int is what it takes.
    server.timeout = int(CEREMONY_TTL.total_seconds() * 1000)  # type: ignore[assignment]
    server.allowed_algorithms = [PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg)
                                 for alg in verify.ALGORITHMS]
    return server


@functools.lru_cache(maxsize=8)
def login(rp_id: str, rp_name: str) -> dict:
    """The usernameless login's options as fido2 makes them, but for the challenge. They are the
    same for every login, and making them costs more than the rest of the request: made once."""
    options, _ = _server(rp_id, rp_name).authenticate_begin(
        credentials=None, user_verification=UserVerificationRequirement.REQUIRED, challenge=bytes(32))
    return _with_hints(options, LOGIN_HINTS)["publicKey"]


def _with_hints(options: CredentialCreationOptions | CredentialRequestOptions, hints) -> dict:
    """The options' JSON with hints, made through the options classes' own constructors."""
    if isinstance(options, CredentialCreationOptions):
        return dict(CredentialCreationOptions(public_key=replace(options.public_key, hints=list(hints))))
    return dict(CredentialRequestOptions(public_key=replace(options.public_key, hints=list(hints))))


def descriptor(credential: CredentialRow) -> PublicKeyCredentialDescriptor:
    # AuthenticatorTransport(t) is what fido2 does to each string itself (an unknown one becomes None).
    transports = [AuthenticatorTransport(t) for t in credential.transports.split(",") if t] or None
    return PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=credential.credential_id,
                                         transports=transports)


def registration(settings: Settings, user: UserRow, existing: Sequence[CredentialRow], *, challenge: bytes,
                 security_key: bool = False, conditional: bool = False) -> dict:
    """A discoverable passkey with user verification, none of the customer's passkeys again.

    conditional (the automatic upgrade): UV "preferred", since browsers refuse a conditional create
    that requires it; such a passkey signs nothing in until a use with UV (verify.py)."""
    options, _ = _server(settings.rp_id, settings.rp_name).register_begin(
        PublicKeyCredentialUserEntity(name=user.customer_code, id=user.user_handle, display_name=user.display_name),
        credentials=[descriptor(c) for c in existing],
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.PREFERRED if conditional else UserVerificationRequirement.REQUIRED,
        authenticator_attachment=AuthenticatorAttachment.CROSS_PLATFORM if security_key else None,
        challenge=challenge)
    return _with_hints(options, SECURITY_KEY if security_key else OWN_DEVICE)


def step_up(settings: Settings, mine: Sequence[CredentialRow], *, challenge: bytes) -> dict:
    """One of the customer's own passkeys, with user verification."""
    options, _ = _server(settings.rp_id, settings.rp_name).authenticate_begin(
        credentials=[descriptor(c) for c in mine], user_verification=UserVerificationRequirement.REQUIRED,
        challenge=challenge)
    return _with_hints(options, OWN_DEVICE)


# --- staff (the console) -----------------------------------------------------------------------


def staff_registration(settings: Settings, member: StaffRow, existing: Sequence[StaffCredentialRow], *,
                       challenge: bytes) -> dict:
    """A staff passkey: discoverable, UV required; a security key or this device, either is fine (no hints)."""
    options, _ = _server(settings.rp_id, settings.rp_name).register_begin(
        PublicKeyCredentialUserEntity(name=member.name, id=member.user_handle, display_name=member.name),
        credentials=[PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=c.credential_id)
                     for c in existing],
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.REQUIRED, challenge=challenge)
    return dict(options)


def staff_login(settings: Settings, *, challenge: bytes) -> dict:
    """Usernameless, UV required."""
    options, _ = _server(settings.rp_id, settings.rp_name).authenticate_begin(
        credentials=None, user_verification=UserVerificationRequirement.REQUIRED, challenge=challenge)
    return dict(options)
