"""`churn serve` (the Litestar scoring service under uvicorn) and `churn token`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import jwt

from serving.auth import ROLES, mint_token
from serving.settings import ServingSettings, load_serving_settings
from warehouse.settings import Settings

SERVE_PORT = 8000
WORKER_HEALTHCHECK_SECONDS = 60


def add_serving_commands(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="start the scoring API (Litestar under uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=SERVE_PORT)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="mint a JWT for the scoring API (local use)")
    token.add_argument("--role", choices=ROLES, default="scorer")
    token.add_argument(
        "--ttl",
        type=int,
        default=3600,
        help="lifetime in seconds (default 3600, at most CHURN_JWT_MAX_TTL_SECONDS)",
    )
    token.add_argument("--subject", default=os.environ.get("USER", "local-user"))
    token.set_defaults(func=cmd_token)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if args.workers < 1:
        print("churn serve: --workers must be at least 1")
        return 2
    try:
        load_serving_settings()  # fail here, with the message, not inside a worker
    except ValueError as exc:
        print(f"churn serve: {exc}")
        return 2
    print(f"Scoring API on http://{args.host}:{args.port} (docs: /schema, /schema/swagger)")
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,  # per-request logging costs more than the request on this path
        # a worker answers the supervisor's ping only once its imports are done, which
        # takes seconds on a busy 2-core box: uvicorn's 5 s default kills and respawns
        # it again and again, and the service never comes up
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    return 0


def signing_key(serving: ServingSettings) -> str:
    """HS256: the service's shared secret; RS256: the private key of the service's
    public key, from CHURN_JWT_PRIVATE_KEY_FILE."""
    if serving.jwt_algorithm == "RS256":
        key_file = os.environ.get("CHURN_JWT_PRIVATE_KEY_FILE")
        if not key_file:
            raise ValueError("RS256 tokens need CHURN_JWT_PRIVATE_KEY_FILE (a PEM private key)")
        try:
            return Path(key_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"CHURN_JWT_PRIVATE_KEY_FILE {key_file} cannot be read: {exc}"
            ) from exc
    return serving.jwt_key


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    try:
        serving = load_serving_settings()
        key = signing_key(serving)
        token = mint_token(
            args.subject,
            args.role,
            args.ttl,
            key,
            serving.jwt_algorithm,
            serving.jwt_issuer,
            audience=serving.jwt_audience,
            max_ttl_seconds=serving.jwt_max_ttl_seconds,
        )
    except (ValueError, jwt.PyJWTError) as exc:  # e.g. a file that holds no private key
        print(f"churn token: {exc}")
        return 2
    print(token)
    return 0


def start_api_in_background(port: int = SERVE_PORT) -> subprocess.Popen:
    """The demo's scoring API beside the Dagster UI."""
    command = [sys.executable, "-m", "churn_assets.cli", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=os.environ.copy())
