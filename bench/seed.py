"""Customers for the benchmark, written straight into the database before the server starts.

Setting up thousands of passkeys through the API would measure registration, not login; here each
virtual customer gets a row and (for passkey clients) one passkey whose private key the load
generator holds. All customers share one argon2id hash of one password: verifying it costs the
same as verifying distinct ones.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from softkey import SoftKey  # noqa: E402

from server import db as dbmod, store  # noqa: E402
from server.config import utcnow  # noqa: E402
from server.passwords import Passwords  # noqa: E402

PASSWORD = "bench-password-1234"


@dataclass
class Customer:
    code: str
    email: str
    key: SoftKey | None  # None: a password-only customer


def seed(database_url: str, *, origin: str, passkey_customers: int, password_customers: int) -> list[Customer]:
    engine = dbmod.make_engine(database_url)
    dbmod.upgrade(engine)
    database = dbmod.Database(engine)
    password_hash = Passwords(workers=1).hash(PASSWORD)
    customers = []
    for i in range(passkey_customers + password_customers):
        code = f"BENCH{i:05d}"
        key = SoftKey(origin=origin) if i < passkey_customers else None  # ES256, synced: the usual passkey
        customers.append(Customer(code, f"{code.lower()}@bench.example", key))

    def write(db) -> None:
        now = utcnow()
        for customer in customers:
            user = store.add_user(db, customer_code=customer.code, display_name="ベンチ 太郎",
                                  email=customer.email, password_hash=password_hash,
                                  user_handle=secrets.token_bytes(32), created_at=now)
            if customer.key is not None:
                customer.key.user_handle = user.user_handle
                store.add_credential(
                    db, user_id=user.id, credential_id=customer.key.credential_id,
                    public_key=customer.key.cose_public_key, algorithm=customer.key.alg, sign_count=0,
                    aaguid="00000000-0000-0000-0000-000000000000", transports="internal,hybrid",
                    backup_eligible=True, backup_state=True, name="bench", created_at=now, hold_until=None)

    database.run_sync(write)
    engine.dispose()
    return customers
