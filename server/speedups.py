"""The one patch Tobira applies to a library, and why it is safe.

python-fido2 2.x calls `typing.get_type_hints(cls)` on every construction of its WebAuthn
dataclasses (fido2/utils.py: `_DataClassMapping.__post_init__` and `_parse_from_dict` call the
module-level name `get_type_hints`), and never caches it. A class's type hints do not change at run
time, and fido2 only reads the dict it gets back, so caching them per class is behaviour-preserving.

It is worth a patch because every passkey login builds two of these dataclasses (the
AuthenticationResponse that server/verify.py hands to Fido2Server.authenticate_complete) and
registration and the ceremony options build more. Measured here with `python -m bench.verify_micro`
(ES256, best of 7 x 2000): parse_authentication ~225 µs without the cache, ~47 µs with it; the
signature check itself is ~65 µs. This is the only patch: nothing else of fido2 is replaced, read
or written past its public API. tests/test_verify.py checks that fido2.utils still looks the name
up (else the patch would silently do nothing) and that parsing gives the same objects with it.
"""

from __future__ import annotations

import functools
import typing

# Keyed by the class (fido2 passes nothing else): one entry per WebAuthn dataclass, a few dozen.
cached_type_hints = functools.cache(typing.get_type_hints)


def install() -> None:
    """Idempotent; called by create_app."""
    import fido2.utils

    setattr(fido2.utils, "get_type_hints", cached_type_hints)  # another module's name, replaced on purpose
