"""Every answer belongs to its customer, under thousands of concurrent requests over a
real server: predict, predict with a list, batch and explain, each checked against the
same customer's answer asked alone, before and after requests whose token subject or
customer id cannot be encoded for Redis; and every prediction-log entry names the
customer and the model version its response did."""

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis

from churn_assets.ml.feature_matrix import load_scoring_frame
from serving.app import create_app
from serving.settings import load_serving_settings
from tests.serving.conftest import TEST_REDIS_URL, bearer, live_server
from tests.serving.tokens import authorization, claims, sign
from warehouse.connection import Warehouse
from warehouse.prediction_log import STREAM
from warehouse.settings import load_settings

pytestmark = pytest.mark.anyio

EXPLAIN_K = 3  # every answer carries reasons: their values tell customers apart where
# probabilities (isotonic calibration: a step function) coincide
MIXED_REQUESTS = 2_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def roomy_env(serving_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Correctness is under test, not latency: no rate limit to reach and a Redis
    budget a busy two-core machine cannot miss."""
    monkeypatch.setenv("CHURN_RATE_LIMIT", "1000000000")
    monkeypatch.setenv("CHURN_REDIS_TIMEOUT_MS", "10000")
    return serving_env


def all_customers(home: Path) -> list[str]:
    frame = load_scoring_frame(Warehouse(load_settings({"CHURN_HOME": str(home)})))
    return sorted(frame["customer_id"].astype(str))


@asynccontextmanager
async def http_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    # idle connections expire here before uvicorn closes them (5 s): reusing one the
    # server is closing would fail a request for a reason that is not under test
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:
        yield client


def identity(item: dict) -> tuple:
    """What must not move from one customer to another: the probability, the model
    version and the reasons (feature values and contributions)."""
    return (
        item["customer_id"],
        item["status"],
        item.get("churn_probability"),
        item.get("model_version"),
        item.get("reasons"),
    )


async def answers_asked_alone(client: httpx.AsyncClient, ids: list[str]) -> dict[str, tuple]:
    """Each customer's answer from a request of its own, one request at a time."""
    expected = {}
    for cid in ids:
        response = await client.post(
            f"/v1/predict?explain={EXPLAIN_K}", json={"customer_id": cid}, headers=bearer("scorer")
        )
        assert response.status_code == 200, response.text
        (item,) = response.json()["predictions"]
        assert item["model_version"] and item["customer_id"] == cid
        expected[cid] = identity(item)
    return expected


async def test_unencodable_input_fails_alone_and_later_answers_keep_their_customer(
    roomy_env, served_home
) -> None:
    ids = all_customers(served_home)
    lone_surrogate = sign(claims(sub="ana\ud800", roles=["admin"]))
    raw = {**bearer("analyst"), "Content-Type": "application/json"}
    with live_server(create_app(load_serving_settings())) as url:
        async with http_client(url) as client:
            expected = await answers_asked_alone(client, ids)
            refused = [
                await client.post(
                    "/v1/predict",
                    json={"customer_id": ids[0]},
                    headers=authorization(lone_surrogate),
                ),
                await client.post(
                    "/v1/explain",
                    json={"customer_ids": ids[:2]},
                    headers=authorization(lone_surrogate),
                ),
                await client.get("/v1/models", headers=authorization(lone_surrogate)),
                await client.post(
                    "/v1/predict", content=b'{"customer_id": "C\\ud800"}', headers=raw
                ),
                await client.post(
                    "/v1/predict/batch", content=b'{"customer_ids": ["C1", "\\udfff"]}', headers=raw
                ),
                await client.post(
                    "/v1/explain", content=b'{"customer_ids": ["\\ud800"]}', headers=raw
                ),
            ]
            order = ids * 3
            random.Random(1).shuffle(order)
            responses = await asyncio.gather(
                *(
                    client.post(
                        f"/v1/predict?explain={EXPLAIN_K}",
                        json={"customer_id": cid},
                        headers=bearer("scorer", f"user-{i % 5}"),
                    )
                    for i, cid in enumerate(order)
                )
            )
    assert [r.status_code for r in refused] == [401, 401, 401, 400, 400, 400]
    assert all("lone surrogates" in r.json()["detail"] for r in refused[:3])
    for cid, response in zip(order, responses, strict=True):
        assert response.status_code == 200, response.text
        (item,) = response.json()["predictions"]
        assert identity(item) == expected[cid]


def mixed_requests(ids: list[str], n: int) -> list[tuple[str, dict, dict, str, list[str]]]:
    """(path, body, headers, key of the items in the answer, ids asked) for n requests
    of four kinds in turn, from several callers; about one list in ten holds an unknown
    id, whose slot must stay its own."""
    rng = random.Random(2)
    tokens: dict[tuple[str, str], dict] = {}
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            asked = [rng.choice(ids)]
            path, body, role, key = (
                f"/v1/predict?explain={EXPLAIN_K}", {"customer_id": asked[0]}, "scorer",
                "predictions",
            )  # fmt: skip
        else:
            asked = rng.sample(ids, rng.randint(1, (10, 30, 5)[kind - 1]))
            if rng.random() < 0.1:
                asked.insert(rng.randrange(len(asked) + 1), f"nobody-{i}")
            path, body, role, key = [
                (f"/v1/predict?explain={EXPLAIN_K}", {"customer_ids": asked}, "scorer",
                 "predictions"),
                ("/v1/predict/batch", {"customer_ids": asked, "explain": EXPLAIN_K}, "analyst",
                 "predictions"),
                ("/v1/explain", {"customer_ids": asked, "top_k": EXPLAIN_K}, "analyst",
                 "explanations"),
            ][kind - 1]  # fmt: skip
        caller = (role, f"{role}-{(i // 4) % 4}")
        if caller not in tokens:
            tokens[caller] = bearer(*caller)
        out.append((path, body, tokens[caller], key, asked))
    return out


def logged_entries() -> dict[str, list[dict[str, str]]]:
    """The prediction log's entries by request id."""
    stream = redis.Redis.from_url(TEST_REDIS_URL)
    by_request: dict[str, list[dict[str, str]]] = {}
    for _, fields in stream.xrange(STREAM):
        entry = {k.decode(): v.decode() for k, v in fields.items()}
        by_request.setdefault(entry["request_id"], []).append(entry)
    return by_request


async def test_thousands_of_mixed_concurrent_requests_each_get_their_own_answers(
    roomy_env, served_home
) -> None:
    ids = all_customers(served_home)
    requests = mixed_requests(ids, MIXED_REQUESTS)
    with live_server(create_app(load_serving_settings())) as url:
        async with http_client(url) as client:
            expected = await answers_asked_alone(client, ids)
            responses = await asyncio.gather(
                *(client.post(path, json=body, headers=h) for path, body, h, _, _ in requests)
            )
    # the server stopped: its prediction log wrote every entry it held on the way out
    logged = logged_entries()
    scored = 0
    for (_, _, _, key, asked), response in zip(requests, responses, strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        items = body[key]
        assert [item["customer_id"] for item in items] == asked
        for item in items:
            if item["customer_id"].startswith("nobody-"):
                assert item == {"customer_id": item["customer_id"], "status": "not_found"}
            else:
                assert identity(item) == expected[item["customer_id"]]
        ok = [item for item in items if item["status"] == "ok"]
        scored += len(ok)
        entries = logged.get(body["request_id"], [])
        assert [(e["customer_id"], e["model_version"]) for e in entries] == [
            (item["customer_id"], item["model_version"]) for item in ok
        ]
        for entry, item in zip(entries, ok, strict=True):
            assert float(entry["probability"]) == item["churn_probability"]
            reasons = [[r["feature"], r["contribution"]] for r in item["reasons"]]
            assert json.loads(entry["reasons"]) == reasons
    assert scored > MIXED_REQUESTS  # lists and batches: many customers per request
