"""The load generator's authenticator: verify bodies for one ES256 passkey, made cheaply.

tests/softkey.py builds every response field by field (so that tests can break any of them) and
serialises it through `json`; per ceremony that cost the load generator more CPU than the
signature itself. In the benchmark a login is always the same valid assertion of a synced ES256
key (UP, UV, BE, BS; sign count 0) but for the challenge, so everything else is serialised once
and a ceremony only makes clientDataJSON and signs authenticatorData || SHA-256(clientDataJSON)
with the key's cached private key object. The body is byte for byte what
`json.dumps(key.get(challenge), separators=(",", ":"))` gives for the same key, apart from the
(random) ECDSA signature: tests/test_bench.py checks that, and the benchmark run shows that the
server accepts it.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ES256 = -7
ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class Assertions:
    """AuthenticationResponseJSON bodies for a tests/softkey.py SoftKey (ES256, synced, with the
    user handle it was registered with)."""

    def __init__(self, key) -> None:
        if key.alg != ES256 or not key.synced or not key.user_handle:
            raise ValueError("only a synced ES256 key with a user handle")
        self.private_key = key.private_key
        self.authenticator_data = key.authenticator_data(flags=key.default_flags(), counter=0)
        credential = b64url(key.credential_id)
        self.head = (b'{"id":"' + credential + b'","rawId":"' + credential
                     + b'","type":"public-key","response":{"clientDataJSON":"')
        self.between = b'","authenticatorData":"' + b64url(self.authenticator_data) + b'","signature":"'
        self.tail = (b'","userHandle":"' + b64url(key.user_handle) + b'"},"clientExtensionResults":{},'
                     b'"authenticatorAttachment":' + json.dumps(key.attachment).encode() + b"}")
        self.client_data_tail = b'","origin":' + json.dumps(key.origin).encode() + b',"crossOrigin":false}'

    def body(self, challenge: bytes) -> bytes:
        """The verify request's body for the challenge of the options answer (its bytes)."""
        client_data = b'{"type":"webauthn.get","challenge":"' + b64url(challenge) + self.client_data_tail
        signed = self.authenticator_data + hashlib.sha256(client_data).digest()
        signature = self.private_key.sign(signed, ECDSA_SHA256)
        return b"".join((self.head, b64url(client_data), self.between, b64url(signature), self.tail))
