"""Microseconds per `verify.parse_authentication` and per `verify.verify_authentication`, in process.

    python -m bench.verify_micro [--number N] [--repeat R]

One passkey login's CPU work in server/verify.py, without HTTP or the database: a software
passkey (tests/softkey.py) signs one assertion, which is parsed and verified over and over. A
synced key reports sign count 0, so the same assertion stays valid. `speedups.install()` is
applied, as create_app does, unless --no-speedups. Each figure is the best of R runs of N calls (the
machine is shared, and the best run is the one least disturbed by others); "cold" clears keys.py's
stored-key cache before every call, the cost of a credential's first login after a restart or an
eviction. The bare cryptography verify is printed as the floor no caching can go below.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402

from server import speedups, verify  # noqa: E402
from softkey import EDDSA, ES256, RS256, SoftKey, b64url_decode  # noqa: E402

CHALLENGE = hashlib.sha256(b"bench").digest()
ORIGIN = "http://localhost:8000"
NAMES = {ES256: "ES256", EDDSA: "EdDSA", RS256: "RS256"}


def best(run, number: int, repeat: int) -> float:
    """µs per call, best of `repeat` runs of `number` calls."""
    return min(timeit.repeat(run, number=number, repeat=repeat)) / number * 1e6


def measure(alg: int, number: int, repeat: int) -> dict[str, float]:
    key = SoftKey(alg)
    key.create(CHALLENGE, user_handle=bytes(32))
    data = key.get(CHALLENGE)
    public_key = key.cose_public_key
    response = verify.parse_authentication(data)

    def verify_once():
        return verify.verify_authentication(response=response, expected_challenge=CHALLENGE,
                                            expected_origins=(ORIGIN,), rp_id="localhost",
                                            public_key=public_key, stored_sign_count=0,
                                            stored_backup_eligible=key.synced)

    # keys.py's cache; before issue 12 it was verify._cached_stored_key (this file measures that commit too)
    before_12 = getattr(verify, "_cached_stored_key", None)
    clear = before_12.cache_clear if before_12 else importlib.import_module("server.keys").cache_clear

    def verify_cold():
        if clear:
            clear()
        return verify_once()

    verify_once()  # fills the cache, and fails loudly if the assertion does not verify
    signed = b64url_decode(data["response"]["authenticatorData"]) + hashlib.sha256(
        b64url_decode(data["response"]["clientDataJSON"])).digest()
    signature = b64url_decode(data["response"]["signature"])
    crypto_key = key.private_key.public_key()
    if alg == ES256:
        bare = lambda: crypto_key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))  # noqa: E731
    elif alg == EDDSA:
        bare = lambda: crypto_key.verify(signature, signed)  # noqa: E731
    else:
        bare = lambda: crypto_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())  # noqa: E731
    return {
        "parse": best(lambda: verify.parse_authentication(data), number, repeat),
        "verify": best(verify_once, number, repeat),
        "verify cold": best(verify_cold, number, repeat) if clear else float("nan"),
        "bare crypto": best(bare, number, repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-speedups", action="store_true", help="fido2 as it ships (no get_type_hints cache)")
    args = parser.parse_args()
    if not args.no_speedups:
        speedups.install()
    print(f"µs per call, best of {args.repeat} x {args.number}, speedups {'off' if args.no_speedups else 'on'}")
    print(f"{'':6} {'parse':>8} {'verify':>8} {'cold':>8} {'crypto':>8}")
    for alg in (ES256, EDDSA, RS256):
        r = measure(alg, args.number, args.repeat)
        print(f"{NAMES[alg]:6} {r['parse']:8.1f} {r['verify']:8.1f} {r['verify cold']:8.1f} {r['bare crypto']:8.1f}")


if __name__ == "__main__":
    main()
