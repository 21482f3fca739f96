"""Every real browser/authenticator response in ../shared/vectors through Tobira's verification.

Under Tobira's policy (attestation "none", algorithms -8/-7/-257) a vector is accepted when its
source expects "ok" and its algorithm is offered; rejected, for the right reason, when its
algorithm is not offered or its source's reason is about the response itself. Reasons about the
attestation statement's trust chain do not apply when attestation is "none".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server import verify

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
OFFERED = set(verify.ALGORITHMS)
ABOUT_THE_RESPONSE = {"origin", "challenge", "rp_id", "uv", "signature", "counter", "parse", "alg_not_requested",
                      "token_binding"}


# How many vectors each file holds (shared/vectors/README.md): 66 + 20 = 86. Checked by count, so a
# missing, empty or cut-short file fails loudly instead of parametrizing nothing and passing.
EXPECTED_COUNTS = {"registration.json": 66, "authentication.json": 20}
MISSING: list[str] = []


def load(name):
    path = VECTORS / name
    try:
        vectors = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        # Not a skip: without the vectors every test below would be silently absent. The module
        # still loads (the other tests run) and test_the_vector_files_are_all_there fails.
        MISSING.append(f"{path}: {type(exc).__name__}: {exc} (shared/ must sit beside the checkout)")
        return []
    return vectors


REGISTRATION = load("registration.json")
AUTHENTICATION = load("authentication.json")


def test_the_vector_files_are_all_there():
    assert not MISSING, MISSING
    assert {name: len(v) for name, v in (("registration.json", REGISTRATION),
                                         ("authentication.json", AUTHENTICATION))} == EXPECTED_COUNTS
    ids = [v["id"] for v in REGISTRATION + AUTHENTICATION]
    assert len(ids) == len(set(ids)) == sum(EXPECTED_COUNTS.values()) == 86


def offered(v) -> set[int]:
    """What the vector's request offered, within what Tobira ever offers."""
    asked = (v.get("policy") or {}).get("pub_key_cred_params")
    return OFFERED & set(asked) if asked else OFFERED


# Where Tobira's contract is stricter than the library a vector came from. Each is asserted, not
# skipped: the vector must be rejected, for exactly this reason.
STRICTER = {
    # The contract: `id` must equal `rawId` and the attested credential ID. These sources used
    # placeholder IDs ("aaa", "bbb") or a rawId that differs from authData, and did not compare.
    "swa-packed-self-chrome-touchid": "credential_id",
    "swa-packed-x5c-yubikey": "credential_id",
    "wrs-android-key-software": "credential_id",
    # security.md §6: a COSE key with text labels is malformed, whatever the attestation says.
    "wrs-packed-solokey-v2-bad-eddsa": "parse",
    # The legacy FIDO AppID extension (U2F-era keys): Tobira never asks for it, so an rpIdHash of
    # the AppID is simply the wrong RP ID.
    "wrs-auth-yubikey5-appid": "rp_id",
}


def expected(v) -> str:
    if v["id"] in STRICTER:
        return STRICTER[v["id"]]
    reason = (v.get("reason") or "").split(":")[0]
    if v["expect"] == "fail" and reason in ABOUT_THE_RESPONSE:
        return reason
    return "ok" if v["alg"] in offered(v) else "alg_not_requested"


def outcome(run) -> str:
    try:
        run()
    except verify.Malformed:
        return "parse"
    except verify.Rejected as exc:
        return exc.reason
    return "ok"


def challenge(v) -> bytes:
    return verify.decode(v["challenge_b64url"], "clientDataJSON")


def origins(v):
    return v.get("allowed_origins") or [v["origin"]]


@pytest.mark.parametrize("v", REGISTRATION, ids=[v["id"] for v in REGISTRATION])
def test_registration_vector(v):
    def run():
        response = verify.parse_registration(v["response"])
        verify.verify_registration(response=response, expected_challenge=challenge(v), expected_origins=origins(v),
                                   rp_id=v["rp_id"], algorithms=offered(v),
                                   require_user_verification=v["require_user_verification"])

    assert outcome(run) == expected(v), v.get("reason") or v["notes"]


@pytest.mark.parametrize("v", REGISTRATION, ids=[v["id"] for v in REGISTRATION])
def test_a_conditional_ceremony_judges_each_real_registration_the_same(v):
    """The automatic upgrade's ceremony drops the UP check (none of these real responses lacks UP)
    and asks UV only as "preferred": every other verdict on these responses must stay the same."""
    def run():
        response = verify.parse_registration(v["response"])
        verify.verify_registration(response=response, expected_challenge=challenge(v), expected_origins=origins(v),
                                   rp_id=v["rp_id"], algorithms=offered(v), require_user_verification=False,
                                   conditional=True)

    assert outcome(run) == expected(v), v.get("reason") or v["notes"]


@pytest.mark.parametrize("v", AUTHENTICATION, ids=[v["id"] for v in AUTHENTICATION])
def test_authentication_vector(v):
    def run():
        response = verify.parse_authentication(v["response"])
        verify.verify_authentication(response=response, expected_challenge=challenge(v),
                                     expected_origins=origins(v), rp_id=v["rp_id"],
                                     public_key=verify.decode(v["credential_public_key_b64url"], "attestationObject"),
                                     stored_sign_count=v.get("prior_sign_count", 0),
                                     # No vector records its stored row; every one is of a device-bound
                                     # key (BE=0), and BE never changes after creation (WebAuthn §6.1.3).
                                     stored_backup_eligible=False,
                                     algorithms=offered(v), require_user_verification=v["require_user_verification"])

    assert outcome(run) == expected(v), v.get("reason") or v["notes"]


def test_the_vectors_cover_both_outcomes():
    kinds = {expected(v) for v in REGISTRATION + AUTHENTICATION}
    assert {"ok", "origin", "challenge", "rp_id", "uv", "signature", "counter", "parse",
            "alg_not_requested", "token_binding"} <= kinds
    assert len(REGISTRATION) + len(AUTHENTICATION) == 86
    assert set(STRICTER) <= {v["id"] for v in REGISTRATION + AUTHENTICATION}
