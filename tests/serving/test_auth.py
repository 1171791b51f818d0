"""Tokens: `churn token` mints what the service accepts, with the local HS256 secret and
with an RS256 key pair; RS256 refuses tokens from another key or another algorithm.
Every malformed, forged, stale or over-long token is a 401 through the real app (never
a 5xx), a weak or unreadable key stops the service from starting, and no token
reaches the service's log."""

import logging
import time
from collections.abc import Callable, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from litestar.exceptions import NotAuthorizedException
from litestar.testing import AsyncTestClient

from churn_assets.cli import main
from serving.app import create_app
from serving.auth import TokenVerifier, mint_token
from serving.settings import load_serving_settings, local_jwt_secret
from tests.serving.conftest import SECRET, bearer, free_port
from tests.serving.tokens import authorization, claims, sign

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pem_pair(tmp_path, name: str) -> tuple:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / f"{name}.pem"
    public = tmp_path / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def churn_token(capsys, *args: str) -> str:
    assert main(["token", *args]) == 0
    return capsys.readouterr().out.strip()


def test_churn_token_uses_the_local_secret_by_default(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.delenv("CHURN_JWT_SECRET", raising=False)
    token = churn_token(capsys, "--role", "analyst", "--ttl", "90", "--subject", "dana")
    secret = local_jwt_secret(tmp_path)
    assert (tmp_path / "secrets" / "jwt_secret").stat().st_mode & 0o777 == 0o600
    decoded = jwt.decode(
        token, secret, algorithms=["HS256"], issuer="churn-lakehouse", audience="churn-scoring"
    )
    assert decoded["sub"] == "dana" and decoded["roles"] == ["analyst"]
    assert decoded["exp"] - decoded["iat"] == 90
    principal = TokenVerifier(secret, "HS256", "churn-lakehouse").verify(token)
    assert principal.rank() == 1
    assert main(["token", "--ttl", "0"]) == 2
    assert "at least one second" in capsys.readouterr().out


def test_rs256_accepts_only_its_own_key_and_algorithm(tmp_path) -> None:
    private, public = pem_pair(tmp_path, "service")
    other, _ = pem_pair(tmp_path, "intruder")
    verifier = TokenVerifier(public.read_text(), "RS256", "churn-lakehouse")
    good = mint_token("svc", "scorer", 60, private.read_text(), "RS256", "churn-lakehouse")
    assert verifier.verify(good).subject == "svc"
    foreign = mint_token("svc", "admin", 60, other.read_text(), "RS256", "churn-lakehouse")
    symmetric = mint_token("svc", "admin", 60, "s" * 40, "HS256", "churn-lakehouse")
    wrong_issuer = mint_token("svc", "admin", 60, private.read_text(), "RS256", "elsewhere")
    for token in (foreign, symmetric, wrong_issuer):
        with pytest.raises(NotAuthorizedException, match="invalid token"):
            verifier.verify(token)


async def test_service_with_rs256_serves_churn_token_tokens(
    serving_env, tmp_path, monkeypatch, capsys
) -> None:
    private, public = pem_pair(tmp_path, "service")
    monkeypatch.setenv("CHURN_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("CHURN_JWT_PUBLIC_KEY_FILE", str(public))
    monkeypatch.delenv("CHURN_JWT_PRIVATE_KEY_FILE", raising=False)
    assert main(["token", "--role", "analyst"]) == 2
    assert "CHURN_JWT_PRIVATE_KEY_FILE" in capsys.readouterr().out
    monkeypatch.setenv("CHURN_JWT_PRIVATE_KEY_FILE", str(private))
    token = churn_token(capsys, "--role", "analyst", "--ttl", "60")
    hs256 = mint_token(
        "x", "admin", 60, serving_env["CHURN_JWT_SECRET"], "HS256", "churn-lakehouse"
    )
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        ok = await client.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
        refused = await client.get("/v1/models", headers={"Authorization": f"Bearer {hs256}"})
    assert ok.status_code == 200 and ok.json()["models"][0]["version"] == "1"
    assert refused.status_code == 401


@pytest.fixture
async def client(serving_env):
    async with AsyncTestClient(app=create_app(load_serving_settings())) as test_client:
        yield test_client


def tampered() -> str:
    """A scorer's token whose payload was rewritten to admin, signature kept."""
    header, _, signature = sign(claims(roles=["scorer"])).split(".")
    forged_body = sign(claims(roles=["admin"], sub="mallory")).split(".")[1]
    return f"{header}.{forged_body}.{signature}"


def rs256_public_key_as_hmac_secret() -> str:
    """The classic key confusion: HS256 signed with the service's RS256 public key."""
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return sign(claims(), key=pem)


def now() -> int:
    return int(time.time())


# built when the test runs, not at collection: the claims carry the current time
REFUSED: dict[str, tuple[Callable[[], str], str]] = {
    "alg none": (lambda: sign(claims(), algorithm="none"), "invalid token"),
    "another algorithm": (lambda: sign(claims(), algorithm="HS384"), "alg value is not allowed"),
    "another key": (lambda: sign(claims(), key="k" * 40), "Signature verification failed"),
    "public key as secret": (rs256_public_key_as_hmac_secret, "Signature verification failed"),
    "tampered": (tampered, "Signature verification failed"),
    "expired": (lambda: sign(claims(iat=now() - 600, exp=now() - 60)), "token expired"),
    "not yet valid": (lambda: sign(claims(nbf=now() + 120)), "not yet valid (nbf)"),
    "issued in the future": (
        lambda: sign(claims(iat=now() + 120, exp=now() + 700)),
        "not yet valid (iat)",
    ),
    "no aud": (lambda: sign(claims(aud=None)), 'missing the "aud" claim'),
    "no iss": (lambda: sign(claims(iss=None)), 'missing the "iss" claim'),
    "no exp": (lambda: sign(claims(exp=None)), 'missing the "exp" claim'),
    "no iat": (lambda: sign(claims(iat=None)), 'missing the "iat" claim'),
    "no sub": (lambda: sign(claims(sub=None)), 'missing the "sub" claim'),
    "another audience": (lambda: sign(claims(aud="billing")), "Audience doesn't match"),
    "another issuer": (lambda: sign(claims(iss="elsewhere")), "Invalid issuer"),
    "lives too long": (lambda: sign(claims(exp=now() + 86_401)), "more than the 86400 s"),
    "lone surrogate subject": (lambda: sign(claims(sub="ab\ud800")), "lone surrogates"),
    "empty subject": (lambda: sign(claims(sub="")), "must not be empty"),
    "numeric subject": (lambda: sign(claims(sub=42)), "Subject must be a string"),
    "roles not a list": (lambda: sign(claims(roles="admin")), "roles must be a list"),
    "not a jwt": (lambda: "not-a-jwt", "invalid token"),
    "three bad segments": (lambda: "a.b.c", "invalid token"),
}
# the edges that stay accepted: 30 s of clock leeway and exactly the longest lifetime
ACCEPTED: dict[str, Callable[[], str]] = {
    "expired within the leeway": lambda: sign(claims(iat=now() - 600, exp=now() - 10)),
    "valid within the leeway (nbf)": lambda: sign(claims(nbf=now() + 10)),
    "issued within the leeway": lambda: sign(claims(iat=now() + 10, exp=now() + 600)),
    "the longest lifetime": lambda: sign(claims(exp=now() + 86_400)),
    "one of several audiences": lambda: sign(claims(aud=["billing", "churn-scoring"])),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_bad_tokens_are_401_with_the_reason(client, customers, case) -> None:
    make, reason = REFUSED[case]
    token = make()
    response = await client.post(
        "/v1/predict", json={"customer_id": customers[0]}, headers=authorization(token)
    )
    assert response.status_code == 401, response.text
    assert reason in response.json()["detail"]
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert token not in response.text


@pytest.mark.parametrize("case", list(ACCEPTED))
async def test_tokens_at_the_edges_are_accepted(client, customers, case) -> None:
    response = await client.post(
        "/v1/predict", json={"customer_id": customers[0]}, headers=authorization(ACCEPTED[case]())
    )
    assert response.status_code == 200, response.text


async def test_the_leeway_and_lifetime_are_configurable(serving_env, monkeypatch, customers):
    monkeypatch.setenv("CHURN_JWT_LEEWAY_SECONDS", "0")
    monkeypatch.setenv("CHURN_JWT_MAX_TTL_SECONDS", "600")
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        body = {"customer_id": customers[0]}
        stale = await client.post(
            "/v1/predict", json=body, headers=authorization(ACCEPTED["expired within the leeway"]())
        )
        ten_minutes = await client.post(
            "/v1/predict", json=body, headers=authorization(sign(claims(exp=now() + 600)))
        )
        longer = await client.post(
            "/v1/predict", json=body, headers=authorization(sign(claims(exp=now() + 601)))
        )
    assert stale.status_code == 401 and stale.json()["detail"] == "token expired"
    assert ten_minutes.status_code == 200
    assert longer.status_code == 401 and "more than the 600 s" in longer.json()["detail"]


def test_churn_token_refuses_what_the_service_would_refuse(
    serving_env, monkeypatch, capsys
) -> None:
    assert main(["token", "--ttl", str(24 * 3600 + 1)]) == 2
    assert "at most 86400 s (CHURN_JWT_MAX_TTL_SECONDS)" in capsys.readouterr().out
    assert main(["token", "--subject", ""]) == 2
    assert "must not be empty" in capsys.readouterr().out
    with pytest.raises(ValueError, match="lone surrogates"):
        mint_token("\udc80", "scorer", 60, SECRET, "HS256", "churn-lakehouse")
    monkeypatch.setenv("CHURN_JWT_MAX_TTL_SECONDS", "60")
    assert main(["token"]) == 2  # the default lifetime, an hour, is now too long
    assert "at most 60 s" in capsys.readouterr().out


async def test_the_demo_token_and_a_custom_audience(
    serving_env, monkeypatch, capsys, customers
) -> None:
    # `churn demo` prints a scorer token valid 8 hours
    assert main(["token", "--ttl", str(8 * 3600), "--subject", "demo"]) == 0
    demo = capsys.readouterr().out.strip()
    monkeypatch.setenv("CHURN_JWT_AUDIENCE", "scoring-eu")
    assert main(["token"]) == 0
    eu = capsys.readouterr().out.strip()
    assert jwt.decode(eu, options={"verify_signature": False})["aud"] == "scoring-eu"
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        body = {"customer_id": customers[0]}
        for_eu = await client.post("/v1/predict", json=body, headers=authorization(eu))
        default_audience = await client.post("/v1/predict", json=body, headers=bearer("scorer"))
    assert for_eu.status_code == 200 and default_audience.status_code == 401
    monkeypatch.delenv("CHURN_JWT_AUDIENCE")
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        response = await client.post(
            "/v1/predict", json={"customer_id": customers[0]}, headers=authorization(demo)
        )
    assert response.status_code == 200
    assert jwt.decode(demo, options={"verify_signature": False})["sub"] == "demo"


def ec_public_key(path) -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(path)


def garbage(path) -> str:
    path.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    return str(path)


KEY_FILES: dict[str, tuple[Callable, str]] = {
    "missing": (lambda tmp: str(tmp / "absent.pem"), "cannot be read"),
    "a directory": (lambda tmp: str(tmp), "cannot be read"),
    "not a key": (lambda tmp: garbage(tmp / "garbage.pem"), "does not hold a PEM public key"),
    "a private key": (lambda tmp: str(pem_pair(tmp, "svc")[0]), "does not hold a PEM public key"),
    "an EC key": (lambda tmp: ec_public_key(tmp / "ec.pem"), "not an RSA public key"),
}


@pytest.mark.parametrize("case", list(KEY_FILES))
def test_an_unusable_rs256_key_stops_the_service(
    serving_env, monkeypatch, tmp_path, capsys, case
) -> None:
    make, reason = KEY_FILES[case]
    monkeypatch.setenv("CHURN_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("CHURN_JWT_PUBLIC_KEY_FILE", make(tmp_path))
    with pytest.raises(ValueError, match=reason) as refused:
        create_app()
    assert "CHURN_JWT_PUBLIC_KEY_FILE" in str(refused.value)
    assert main(["serve", "--port", str(free_port())]) == 2
    out = capsys.readouterr().out
    assert "CHURN_JWT_PUBLIC_KEY_FILE" in out and reason in out


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("CHURN_JWT_SECRET", "s" * 31, "CHURN_JWT_SECRET must be at least 32 bytes, got 31"),
        ("CHURN_JWT_AUDIENCE", "", "CHURN_JWT_AUDIENCE must not be empty"),
        ("CHURN_JWT_ISSUER", "", "CHURN_JWT_ISSUER must not be empty"),
        ("CHURN_JWT_MAX_TTL_SECONDS", "0", "CHURN_JWT_MAX_TTL_SECONDS must be at least 1"),
        ("CHURN_JWT_MAX_TTL_SECONDS", "a day", "CHURN_JWT_MAX_TTL_SECONDS must be a number"),
        ("CHURN_JWT_LEEWAY_SECONDS", "-1", "CHURN_JWT_LEEWAY_SECONDS must not be negative"),
    ],
)
def test_weak_or_invalid_jwt_settings_stop_the_service(
    serving_env, monkeypatch, capsys, variable, value, reason
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=reason):
        create_app()
    assert main(["serve", "--port", str(free_port())]) == 2
    assert reason in capsys.readouterr().out


@pytest.fixture
def service_log() -> Iterator[list[str]]:
    """Every record any logger emits while the test runs, formatted with tracebacks.
    Attached to the loggers that do not propagate to the root too (Litestar's)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(logging.Formatter().format(record))

    handler = Keep(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("", "serving", "litestar", "uvicorn", "httpx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield lines
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


async def test_no_token_reaches_the_service_log(serving_env, customers, service_log) -> None:
    tokens = [make() for make, _ in REFUSED.values()]
    tokens.append(sign(claims(sub="\ud800", jti="marker-in-a-bad-token")))
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        statuses = []
        for token in tokens:
            response = await client.post(
                "/v1/predict", json={"customer_id": customers[0]}, headers=authorization(token)
            )
            statuses.append(response.status_code)
            assert token not in response.text
        # a failure inside the service logs a traceback: it must not carry the token either
        broken = sign(claims(sub="tester"))
        client.app.state.scorer = None  # every scoring call now fails unexpectedly
        internal = await client.post(
            "/v1/predict", json={"customer_id": customers[0]}, headers=authorization(broken)
        )
    assert set(statuses) == {401}
    assert internal.status_code == 500 and internal.json()["detail"] == "internal error"
    logged = "\n".join(service_log)
    assert "unhandled error on POST /v1/predict" in logged  # the capture sees the service
    for token in [*tokens, broken]:
        assert token not in logged
        # nor its payload or signature alone (either identifies it)
        for segment in token.split(".")[1:]:
            if len(segment) > 20:
                assert segment not in logged
    assert SECRET not in logged
