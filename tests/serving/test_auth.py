"""Tokens: `churn token` mints what the service accepts, with the local HS256 secret and
with an RS256 key pair; RS256 refuses tokens from another key or another algorithm."""

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.exceptions import NotAuthorizedException
from litestar.testing import AsyncTestClient

from churn_assets.cli import main
from serving.app import create_app
from serving.auth import TokenVerifier, mint_token
from serving.settings import load_serving_settings, local_jwt_secret

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
    claims = jwt.decode(token, secret, algorithms=["HS256"], issuer="churn-lakehouse")
    assert claims["sub"] == "dana" and claims["roles"] == ["analyst"]
    assert claims["exp"] - claims["iat"] == 90
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
