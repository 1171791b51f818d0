"""The model half of the graph on a small data set with a tiny search budget: search,
evaluation, gates and promotion through `churn materialize`, then reproduce, a leaking
feature refused by the gates, manual promotion and rollback, and a deliberately worse
model refused against the champion, all on the ledger."""

import datetime as dt
import json
import shutil

import mlflow
import pytest

from churn_assets import cli
from warehouse.connection import Warehouse
from warehouse.generator import GeneratorConfig, generate
from warehouse.promotion_ledger import PromotionLedger
from warehouse.settings import load_settings

MEDIUM = GeneratorConfig(customers=3000, days=240, seed=11, start=dt.date(2025, 1, 1))
TINY_BUDGET = {
    "CHURN_SEARCH_TRIALS": "6",
    "CHURN_SEARCH_TIMEOUT_SECONDS": "900",  # the trial count, not the clock, bounds it
    "CHURN_BOOTSTRAP_ROUNDS": "50",
    # a 600-row holdout splits into groups too small for the default 0.15 AUC-gap limit
    "CHURN_GATE_FAIRNESS_GAP": "0.5",
}


@pytest.fixture(scope="module")
def medium_landing(tmp_path_factory):
    home = tmp_path_factory.mktemp("medium")
    generate(MEDIUM, home / "landing", home / "ground_truth")
    return home


@pytest.mark.e2e
def test_train_gate_promote_reproduce_refuse_and_roll_back(
    medium_landing, tmp_path, monkeypatch, capsys, redis_url
):
    shutil.copytree(medium_landing, tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CHURN_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for key, value in TINY_BUDGET.items():
        monkeypatch.setenv(key, value)

    assert cli.main(["materialize"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    for gate in ("auc_floor", "not_worse_than_champion", "brier_ceiling", "fairness_gap"):
        assert f"pass  churn_model_evaluation:{gate}" in out
    assert "materialized  churn_model_promotion" in out
    # the champion's features went online, checked against the warehouse first
    assert "pass  online_features:online_offline_parity" in out
    assert "materialized  online_features" in out
    assert "materialized  batch_scores" in out and "materialized  prediction_log" in out
    # drift against the reference frozen with v1, reported without failing the run
    assert "materialized  feature_drift_report" in out
    assert "feature_drift_report:feature_drift" in out.split("Monitoring (findings")[1]

    assert cli.main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    champion = status["models"]["champion"]
    assert champion["version"] == "1" and status["models"]["challenger"]["version"] == "1"
    assert champion["metrics"]["roc_auc"] > 0.75
    assert champion["tags"]["gate_status"] == "passed"
    for tag in ("training_fingerprint", "dbt_manifest_hash", "code_version", "churn_definition",
                "feature_set_version"):  # fmt: skip
        assert champion["tags"][tag]

    reports = tmp_path / "reports"
    assert (reports / "churn-model-v1.html").stat().st_size > 10_000
    card = json.loads((reports / "churn-model-v1_model_card.json").read_text())
    assert card["known_limits"] and card["features"]

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("churn-model").experiment_id])
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(trials) == 6 and all("family" in r.data.params for r in trials)
    assert (tmp_path / "optuna.db").exists()

    assert cli.main(["reproduce", "1"]) == 0
    out = capsys.readouterr().out
    assert "v1 reproduced exactly" in out and "match    recorded evaluation" in out
    # a recorded evaluation the retrained model does not match is reported
    recorded = client.get_model_version("churn-model", "1").tags["metrics"]
    altered = {**json.loads(recorded), "roc_auc": 0.5}
    client.set_model_version_tag("churn-model", "1", "metrics", json.dumps(altered))
    assert cli.main(["reproduce", "1"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS  recorded evaluation" in out and "with differences" in out
    client.set_model_version_tag("churn-model", "1", "metrics", recorded)

    # A leaking attribute (whether the customer ever churned) must be refused.
    wh = Warehouse(load_settings())
    with wh.transaction() as s:
        s.execute(
            "INSERT INTO analytics.customer_attributes "
            "SELECT customer_id, 'churned_ever', NULL, max(churned)::DOUBLE "
            "FROM analytics.training_examples GROUP BY customer_id"
        )
    assert cli.main(["materialize", "--select", "group:models"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  churn_model_evaluation:leakage_alarm" in out
    assert "attr_churned_ever" in out
    assert "NOT RUN       churn_model_promotion" in out

    assert cli.main(["promote", "2"]) == 2
    assert "refused by its quality gates" in capsys.readouterr().out
    assert cli.main(["promote", "2", "--force", "--reason", "test override"]) == 0
    assert cli.main(["rollback", "--reason", "leak"]) == 0
    assert "champion back to v1" in capsys.readouterr().out
    assert cli.main(["rollback"]) == 2

    # A deliberately worse model: the leak gone, the training periods' labels replaced by
    # noise (the holdout keeps its true labels), so the candidate has learned nothing.
    with wh.transaction() as s:
        s.execute("DELETE FROM analytics.customer_attributes WHERE attribute_name = 'churned_ever'")
        s.execute(
            "UPDATE analytics.training_examples "
            "SET churned = CASE WHEN hash(customer_id || CAST(as_of_date AS VARCHAR)) % 8 = 0 "
            "THEN 1 ELSE 0 END "
            "WHERE as_of_date < (SELECT max(as_of_date) FROM analytics.training_examples)"
        )
    assert cli.main(["materialize", "--select", "group:models"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  churn_model_evaluation:not_worse_than_champion" in out
    assert "NOT RUN       churn_model_promotion" in out
    champion = client.get_model_version_by_alias("churn-model", "champion")
    assert str(champion.version) == "1"

    ledger = PromotionLedger(wh).history("churn-model")
    assert list(ledger["action"]) == [
        "challenger", "promote", "refuse", "challenger", "promote", "rollback", "refuse",
    ]  # fmt: skip
    assert "not_worse_than_champion" in ledger.iloc[6]["reasons"]
    refusal = ledger.iloc[2]
    assert "leakage_alarm" in refusal["reasons"] and json.loads(refusal["evidence"])["gates"]
    assert ledger.iloc[4]["version_after"] == "2" and ledger.iloc[5]["version_after"] == "1"
