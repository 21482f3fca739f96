"""Measured costs in libraries we use, removed without changing what they do.

python-fido2 2.x calls `typing.get_type_hints(cls)` on every construction of its WebAuthn
dataclasses (fido2/utils.py, `_DataClassMapping`), and that call dominates verifying an
assertion. A class's type hints never change at run time, so caching them per class is
behaviour-preserving. Measured here (ES256 parse + verify, one core): 1,875/s uncached,
3,210/s cached.

The login path no longer leans on this: server/verify.py now assembles the assertion's objects
and runs authenticate_complete's checks itself (its docstring has the numbers). Registration, the
ceremony options and fido2's fallback path for odd stored keys still construct these dataclasses.
"""

from __future__ import annotations

import functools
import typing


def install() -> None:
    """Idempotent; called by create_app."""
    import fido2.utils

    if not getattr(fido2.utils.get_type_hints, "_tobira_cached", False):
        cached = functools.cache(typing.get_type_hints)
        cached._tobira_cached = True
        fido2.utils.get_type_hints = cached
