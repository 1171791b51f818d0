"""Settings of the scoring service, from CHURN_* environment variables with defaults.

Where the warehouse, Redis and MLflow are comes from the libraries' own settings
(warehouse.settings, churn_assets.ml.config), so the service finds what the pipeline
wrote without extra configuration."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from churn_assets.ml.config import ModelSettings, load_model_settings
from warehouse.prediction_log import DEFAULT_STREAM_CAP
from warehouse.settings import Settings, load_settings

Algorithm = Literal["HS256", "RS256"]
FailureMode = Literal["fail", "degraded"]
SECRET_FILE = "secrets/jwt_secret"
MAX_BATCH_LIMIT = 5_000
JWT_AUDIENCE = "churn-scoring"
JWT_MAX_TTL_SECONDS = 86_400  # a leaked token is good for a day at most
JWT_LEEWAY_SECONDS = 30  # clock skew between the token's minter and this service
# RFC 7518 section 3.2: an HS256 key at least as long as the hash output (256 bits)
MIN_HS256_SECRET_BYTES = 32


@dataclass(frozen=True)
class ServingSettings:
    storage: Settings
    models: ModelSettings
    jwt_algorithm: Algorithm = "HS256"
    # HS256: the shared secret; RS256: the PEM public key (verification only)
    jwt_key: str = field(default="", repr=False)
    jwt_issuer: str = "churn-lakehouse"
    jwt_audience: str = JWT_AUDIENCE
    jwt_max_ttl_seconds: int = JWT_MAX_TTL_SECONDS
    jwt_leeway_seconds: int = JWT_LEEWAY_SECONDS
    # rate-limit units per token subject per window: one per customer looked up (a
    # request that looks up none costs one)
    rate_limit: int = 6_000
    rate_window_seconds: int = 60
    # requests a worker handles at once before it answers 503 (health and metrics exempt)
    max_in_flight: int = 256
    # when set, GET /metrics needs `Authorization: Bearer <metrics_token>`
    metrics_token: str = field(default="", repr=False)
    max_batch: int = 1_000
    max_body_bytes: int = 1_048_576
    max_feature_age_seconds: int = 3 * 86_400
    redis_timeout_seconds: float = 0.05
    redis_failure_mode: FailureMode = "fail"
    breaker_failures: int = 5
    breaker_reset_seconds: float = 5.0
    reload_poll_seconds: float = 30.0
    explain_default_k: int = 3
    prediction_log_max_entries: int = DEFAULT_STREAM_CAP  # XADD MAXLEN ~ of the stream

    def __post_init__(self) -> None:
        if self.jwt_algorithm not in ("HS256", "RS256"):
            raise ValueError(
                f"CHURN_JWT_ALGORITHM must be HS256 or RS256, not {self.jwt_algorithm}"
            )
        _check_jwt_key(self.jwt_algorithm, self.jwt_key)
        if not self.jwt_issuer:
            raise ValueError("CHURN_JWT_ISSUER must not be empty")
        if not self.jwt_audience:
            raise ValueError("CHURN_JWT_AUDIENCE must not be empty")
        if self.jwt_max_ttl_seconds < 1:
            raise ValueError("CHURN_JWT_MAX_TTL_SECONDS must be at least 1")
        if self.jwt_leeway_seconds < 0:
            raise ValueError("CHURN_JWT_LEEWAY_SECONDS must not be negative")
        if self.redis_failure_mode not in ("fail", "degraded"):
            raise ValueError(
                f"CHURN_REDIS_FAILURE_MODE must be fail or degraded, not {self.redis_failure_mode}"
            )
        for name in (
            "rate_limit",
            "rate_window_seconds",
            "max_batch",
            "max_body_bytes",
            "max_in_flight",
            "prediction_log_max_entries",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_batch > MAX_BATCH_LIMIT:
            # the lookup script unpacks every key onto Lua's stack, which holds about 8,000
            raise ValueError(f"CHURN_MAX_BATCH must be at most {MAX_BATCH_LIMIT:,}")


def local_jwt_secret(home: Path) -> str:
    """The shared secret for local use: created once under CHURN_HOME (mode 0600) so
    `churn token` and `churn serve` agree without configuration."""
    path = home / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _jwt_key(env: dict[str, str], algorithm: str, home: Path) -> str:
    if algorithm == "RS256":
        key_file = env.get("CHURN_JWT_PUBLIC_KEY_FILE")
        if not key_file:
            raise ValueError("CHURN_JWT_ALGORITHM=RS256 needs CHURN_JWT_PUBLIC_KEY_FILE")
        try:
            return Path(key_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"CHURN_JWT_PUBLIC_KEY_FILE {key_file} cannot be read: {exc}") from exc
    return env.get("CHURN_JWT_SECRET") or local_jwt_secret(home)


def _check_jwt_key(algorithm: str, key: str) -> None:
    """Refuse a key no token should be verified with: a guessable HS256 secret, or an
    RS256 file that holds no RSA public key (a private key would verify too, but it
    has no business on the serving side)."""
    if algorithm == "HS256":
        if len(key.encode()) < MIN_HS256_SECRET_BYTES:
            raise ValueError(
                f"CHURN_JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes, got "
                f"{len(key.encode())} (unset, the service uses $CHURN_HOME/{SECRET_FILE})"
            )
        return
    try:
        public_key = load_pem_public_key(key.encode())
    except ValueError as exc:
        raise ValueError(
            f"CHURN_JWT_PUBLIC_KEY_FILE does not hold a PEM public key: {exc}"
        ) from exc
    if not isinstance(public_key, RSAPublicKey):
        raise ValueError(
            f"CHURN_JWT_PUBLIC_KEY_FILE holds a {type(public_key).__name__}, not an RSA "
            "public key (RS256)"
        )


def load_serving_settings(environ: dict[str, str] | None = None) -> ServingSettings:
    env = dict(os.environ if environ is None else environ)
    storage = load_settings(env)
    algorithm = env.get("CHURN_JWT_ALGORITHM", "HS256")

    def number(name: str, default: float) -> float:
        try:
            return float(env.get(name, default))
        except ValueError as exc:
            raise ValueError(f"{name} must be a number, got {env[name]!r}") from exc

    return ServingSettings(
        storage=storage,
        models=load_model_settings(env),
        jwt_algorithm=algorithm,  # type: ignore[arg-type]
        jwt_key=_jwt_key(env, algorithm, storage.home),
        jwt_issuer=env.get("CHURN_JWT_ISSUER", "churn-lakehouse"),
        jwt_audience=env.get("CHURN_JWT_AUDIENCE", JWT_AUDIENCE),
        jwt_max_ttl_seconds=int(number("CHURN_JWT_MAX_TTL_SECONDS", JWT_MAX_TTL_SECONDS)),
        jwt_leeway_seconds=int(number("CHURN_JWT_LEEWAY_SECONDS", JWT_LEEWAY_SECONDS)),
        rate_limit=int(number("CHURN_RATE_LIMIT", 6_000)),
        rate_window_seconds=int(number("CHURN_RATE_WINDOW_SECONDS", 60)),
        max_batch=int(number("CHURN_MAX_BATCH", 1_000)),
        max_body_bytes=int(number("CHURN_MAX_BODY_BYTES", 1_048_576)),
        max_in_flight=int(number("CHURN_MAX_IN_FLIGHT", 256)),
        metrics_token=env.get("CHURN_METRICS_TOKEN", ""),
        max_feature_age_seconds=int(number("CHURN_FEATURE_MAX_AGE_SECONDS", 3 * 86_400)),
        redis_timeout_seconds=number("CHURN_REDIS_TIMEOUT_MS", 50) / 1000,
        redis_failure_mode=env.get("CHURN_REDIS_FAILURE_MODE", "fail"),  # type: ignore[arg-type]
        breaker_failures=int(number("CHURN_BREAKER_FAILURES", 5)),
        breaker_reset_seconds=number("CHURN_BREAKER_RESET_SECONDS", 5),
        reload_poll_seconds=number("CHURN_RELOAD_POLL_SECONDS", 30),
        prediction_log_max_entries=int(
            number("CHURN_PREDICTION_LOG_MAX_ENTRIES", DEFAULT_STREAM_CAP)
        ),
    )
