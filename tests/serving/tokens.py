"""Hand-made JWTs for the refusal tests: signed here with the standard library, so a
test can build what `mint_token` (and PyJWT's encoder) would never produce, such as
`alg: none`, a lone surrogate in the subject or a key confusion."""

import base64
import hashlib
import hmac
import json
import time

from tests.serving.conftest import SECRET

DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: object) -> dict[str, object]:
    """Claims the test service accepts (HS256, default issuer and audience), changed
    by `overrides`; an override of None removes the claim."""
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "tester",
        "roles": ["admin"],
        "iat": now,
        "exp": now + 600,
        "iss": "churn-lakehouse",
        "aud": "churn-scoring",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, object], key: str | bytes = SECRET, algorithm: str = "HS256") -> str:
    """A compact JWS of `payload` (json.dumps escapes a lone surrogate as JSON allows);
    `none` gets an empty signature."""
    header = b64(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    signing_input = f"{header}.{body}".encode()
    secret = key.encode() if isinstance(key, str) else key
    signature = (
        b"" if algorithm == "none" else hmac.new(secret, signing_input, DIGESTS[algorithm]).digest()
    )
    return f"{header}.{body}.{b64(signature)}"


def authorization(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
