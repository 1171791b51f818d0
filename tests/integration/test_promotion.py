"""Promotion, refusal and rollback against a real MLflow store and the real warehouse
ledger (DuckDB and Postgres)."""

import numpy as np
import pandas as pd
import pytest

from churn_assets.ml.bundle import ModelBundle, train_booster
from churn_assets.ml.feature_matrix import FeatureSpec
from churn_assets.ml.promotion import (
    GATE_STATUS_TAG,
    PromotionError,
    champion_history,
    model_status,
    promote,
    refuse,
    rollback,
)
from churn_assets.ml.registry import CHALLENGER, CHAMPION, Registry
from warehouse.connection import Warehouse
from warehouse.promotion_ledger import PromotionLedger


def _bundle(seed: int) -> tuple[ModelBundle, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (frame["a"] + rng.normal(size=400) > 1).astype(int).to_numpy()
    spec = FeatureSpec(("a", "b"))
    booster = train_booster(spec.transform(frame), y, {"num_leaves": 4}, 10, seed)
    return ModelBundle(booster, spec, metadata={"seed": seed}), frame


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "churn-model", "churn-model", tmp_path / "art"
    )


def _register(registry: Registry, seed: int) -> str:
    bundle, frame = _bundle(seed)
    version = registry.log_model(bundle, frame, {"training_fingerprint": f"fp{seed}"})
    return str(version.version)


def test_registered_version_carries_tags_pyfunc_and_bundle(registry, tmp_path):
    import mlflow

    version = _register(registry, 1)
    found = registry.version(version)
    assert found.tags["training_fingerprint"] == "fp1"
    bundle, frame = _bundle(1)
    loaded = registry.load_bundle(version, tmp_path / "cache")
    expected = bundle.predict(bundle.spec.transform(frame))
    np.testing.assert_array_equal(loaded.predict(loaded.spec.transform(frame)), expected)
    pyfunc = mlflow.pyfunc.load_model(f"models:/churn-model/{version}")
    np.testing.assert_allclose(np.asarray(pyfunc.predict(frame.assign(extra=1))), expected)
    assert expected.min() >= 0 and expected.max() <= 1


def test_promote_refuse_and_rollback_update_aliases_and_ledger(registry, settings):
    ledger = PromotionLedger(Warehouse(settings))
    v1, v2, v3, v4 = (_register(registry, s) for s in (1, 2, 3, 4))
    for version in (v1, v2):  # as churn_model_evaluation tags a version that passed
        registry.tag(version, {GATE_STATUS_TAG: "passed", "metrics": '{"roc_auc": 0.8}'})

    promote(registry, ledger, v1, "test", {"note": "first"})
    assert registry.alias(CHAMPION) == v1 and registry.alias(CHALLENGER) == v1
    promote(registry, ledger, v2, "test", {})
    assert registry.alias(CHAMPION) == v2

    refuse(registry, ledger, v3, "test", ["auc_floor: too low"], {"gates": []})
    assert registry.version(v3).tags[GATE_STATUS_TAG] == "refused"
    with pytest.raises(PromotionError, match="refused by its quality gates"):
        promote(registry, ledger, v3, "test", {})
    assert registry.alias(CHAMPION) == v2

    assert rollback(registry, ledger, "test", "bad canary") == {"champion": v1, "rolled_back": v2}
    assert registry.alias(CHAMPION) == v1
    with pytest.raises(PromotionError, match="first champion"):
        rollback(registry, ledger, "test")

    with pytest.raises(PromotionError, match="has not been through its quality gates"):
        promote(registry, ledger, v4, "test", {})
    promote(registry, ledger, v3, "test", {}, force=True)
    assert registry.alias(CHAMPION) == v3

    history = ledger.history("churn-model")
    assert list(history["action"]) == [
        "challenger", "promote", "challenger", "promote", "refuse", "rollback",
        "challenger", "promote",
    ]  # fmt: skip
    # each alias change is an intent and its confirmation; the refusal is one row
    assert list(history["entry_id"]) == [1, 3, 5, 7, 9, 10, 12, 14]
    records = ledger.records("churn-model")
    assert list(records["entry_id"]) == list(range(1, 16))
    confirmations = records[records["intent_id"].notna()]
    assert set(confirmations["state"]) == {"confirmed"}
    assert sorted(confirmations["intent_id"].astype(int)) == [1, 3, 5, 7, 10, 12, 14]
    assert ledger.pending("churn-model").empty
    rolled = history[history["action"] == "rollback"].iloc[0]
    assert (rolled["version_before"], rolled["version_after"]) == (v2, v1)
    assert "bad canary" in rolled["reasons"]
    assert "override" in history.iloc[-1]["reasons"]
    assert '"gate_status": "refused"' in history.iloc[-1]["evidence"]
    assert '"roc_auc": 0.8' in history.iloc[1]["evidence"]  # v1's recorded metrics
    assert champion_history(history) == [v1, v3]
    status = model_status(registry)
    assert status["champion"]["version"] == v3 and status["challenger"]["version"] == v3


def test_ledger_is_append_only_on_postgres(registry, pg_url, monkeypatch):
    import psycopg

    from warehouse.settings import load_settings

    monkeypatch.setenv("CHURN_WAREHOUSE_URL", pg_url)
    ledger = PromotionLedger(Warehouse(load_settings()))
    promote(registry, ledger, _register(registry, 1), "test", {}, force=True)
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("DELETE FROM ops.promotion_ledger")
    assert len(ledger.history()) == 2 and len(ledger.records()) == 4


def test_bundle_cache_tells_apart_registries_that_reuse_version_numbers(tmp_path):
    """A recreated MLflow store numbers its versions from 1 again; a cached bundle of
    the old store must not be served for the new one."""
    first, second = (
        Registry(f"sqlite:///{tmp_path / f'{n}.db'}", "churn-model", "churn-model", tmp_path / n)
        for n in ("first", "second")
    )
    assert _register(first, 1) == _register(second, 2) == "1"
    cache = tmp_path / "cache"
    assert first.load_bundle("1", cache).metadata["seed"] == 1
    assert second.load_bundle("1", cache).metadata["seed"] == 2
