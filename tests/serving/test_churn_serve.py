"""`churn serve` as a user runs it: a real process with two uvicorn workers, tokens
from `churn token`, one rate limit for both workers (counted in Redis), and neither the
secret nor a token in anything the service logs, forged and expired tokens included."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt

from tests.serving.conftest import SECRET, free_port

LIMIT = 8


@contextmanager
def churn_serve(env: dict[str, str], log_file: Path) -> Iterator[str]:
    """`churn serve --workers 2` until ready; yields its URL, stops it on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "churn_assets.cli", "serve", "--port", str(port),
             "--workers", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180  # two workers importing on a busy box
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise AssertionError(f"churn serve never became ready:\n{log_file.read_text()}")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def churn_token(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "churn_assets.cli", "token", *args],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_two_workers_share_one_rate_limit_and_log_no_secret(
    serving_env, customers, tmp_path
) -> None:
    env = {**os.environ, **serving_env, "CHURN_RATE_LIMIT": str(LIMIT)}
    token = churn_token(env, "--role", "scorer", "--subject", "carol")
    forged = jwt.encode({"sub": "x", "roles": ["admin"], "exp": 9e9}, "wrong" * 8)
    expired = jwt.encode(
        {"sub": "x", "roles": ["admin"], "exp": 1, "iss": "churn-lakehouse"}, SECRET
    )
    log_file = tmp_path / "serve.log"
    with churn_serve(env, log_file) as url:
        body = {"customer_id": customers[0]}
        # a fresh connection per request: the kernel spreads them over both workers
        codes = [
            httpx.post(
                f"{url}/v1/predict", json=body, headers={"Authorization": f"Bearer {token}"}
            ).status_code
            for _ in range(LIMIT + 4)
        ]
        refused = [
            httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {bad}"}).status_code
            for bad in (forged, expired)
        ]
    assert codes[:LIMIT] == [200] * LIMIT and set(codes[LIMIT:]) == {429}
    assert refused == [401, 401]
    logged = log_file.read_text()
    assert "Scoring API on http://127.0.0.1" in logged
    for secret in (SECRET, token, forged, expired):
        assert secret not in logged
