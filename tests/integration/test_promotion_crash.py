"""Promotions and rollbacks that die half-way: a real subprocess killed with SIGKILL at
each step boundary (the CHURN_FAULT_AFTER test hook, warehouse/crash_points.py), then
the repair by the next `churn status`, rollback or promotion, against a real MLflow
store and the real warehouse ledger. After the repair the ledger and the aliases agree,
and a rollback is never refused because of the dead run."""

import multiprocessing
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

from churn_assets.ml.promotion import (
    GATE_STATUS_TAG,
    champion_history,
    ledger_status,
    promote,
    rollback,
)
from churn_assets.ml.registry import CHALLENGER, CHAMPION, Registry
from tests.integration.test_promotion import _register
from warehouse.connection import Warehouse
from warehouse.crash_points import FAULT_VARIABLE
from warehouse.promotion_ledger import LedgerEntry, PromotionLedger
from warehouse.settings import Settings, load_settings

# (action of the dead run, step it died after, champion after the repair, how the
# intent it left pending is resolved: None when it died after its confirmation)
CRASHES = [
    ("promote", "challenger:intent", "2", "abandoned"),
    ("promote", "challenger:alias", "2", "confirmed"),
    ("promote", "challenger:confirm", "2", None),
    ("promote", "promote:intent", "2", "abandoned"),
    ("promote", "promote:alias", "3", "confirmed"),
    ("promote", "promote:confirm", "3", None),
    ("rollback", "rollback:intent", "3", "abandoned"),
    ("rollback", "rollback:alias", "2", "confirmed"),
]


@pytest.fixture(scope="module")
def three_versions_store(tmp_path_factory) -> Path:
    """An MLflow store holding three versions that passed their gates (as
    churn_model_evaluation tags them), registered once: each test works on a copy."""
    root = tmp_path_factory.mktemp("three-versions")
    registry = Registry(
        f"sqlite:///{root / 'mlflow.db'}", "churn-model", "churn-model", root / "art"
    )
    for seed in (1, 2, 3):
        registry.tag(_register(registry, seed), {GATE_STATUS_TAG: "passed"})
    return root


@pytest.fixture
def registry(three_versions_store: Path, tmp_path) -> Registry:
    """A copy of the three-version store (the artifacts, which no test changes, shared)."""
    shutil.copy(three_versions_store / "mlflow.db", tmp_path / "mlflow.db")
    return Registry(
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "churn-model",
        "churn-model",
        three_versions_store / "art",
    )


def _three_versions(registry: Registry) -> list[str]:
    versions = sorted(
        str(v.version)
        for v in registry.client.search_model_versions(f"name='{registry.model_name}'")
    )
    assert versions == ["1", "2", "3"]
    return versions


def _die_during(registry: Registry, step: str, action: str, *version: str) -> None:
    """What `churn promote <version>` / `churn rollback` run, in a child process that
    SIGKILLs itself after `step`. The child is forked from this one, not started fresh:
    a real process killed for real, without the seconds of imports a new interpreter
    pays; it reads the warehouse settings from the environment, as the CLI does."""

    def promote_or_roll_back() -> None:
        os.environ[FAULT_VARIABLE] = step
        ledger = PromotionLedger(Warehouse(load_settings()))
        mine = Registry(registry.tracking_uri, "churn-model", "churn-model", Path("unused"))
        if action == "promote":
            promote(mine, ledger, version[0], "crash-test", {})
        else:
            rollback(mine, ledger, "crash-test")

    child = multiprocessing.get_context("fork").Process(target=promote_or_roll_back)
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL, f"the child ended with {child.exitcode}"


def _assert_ledger_agrees(registry: Registry, ledger: PromotionLedger) -> None:
    history = ledger.history("churn-model")
    assert champion_history(history)[-1] == registry.alias(CHAMPION)
    challengers = history[history["action"] == "challenger"]["version_after"]
    assert challengers.iloc[-1] == registry.alias(CHALLENGER)
    assert ledger.pending("churn-model").empty


def _crash_and_repair(
    registry: Registry, settings: Settings, tmp_path, action: str, step: str
) -> tuple[PromotionLedger, dict]:
    """Champion v2 (v1 before it; v3 too for a rollback), a run that dies after `step`,
    then the repair `churn status` makes."""
    ledger = PromotionLedger(Warehouse(settings))
    v1, v2, v3 = _three_versions(registry)
    for version in (v1, v2, v3) if action == "rollback" else (v1, v2):
        promote(registry, ledger, version, "test", {})
    _die_during(registry, step, action, *([v3] if action == "promote" else []))
    return ledger, ledger_status(registry, ledger, "test-status")


@pytest.mark.parametrize(("action", "step", "champion", "resolved"), CRASHES)
def test_a_run_killed_between_steps_is_repaired_and_rollback_works(
    registry, duckdb_settings, tmp_path, action, step, champion, resolved
):
    ledger, status = _crash_and_repair(registry, duckdb_settings, tmp_path, action, step)

    assert registry.alias(CHAMPION) == champion
    assert [fix["state"] for fix in status["repaired"]] == ([resolved] if resolved else [])
    if resolved:
        fix = status["repaired"][0]
        assert fix["action"] == step.split(":")[0] and fix["alias_found"] == registry.alias(
            fix["alias"]
        )
    assert status["agrees"] and status["pending"] == 0
    assert status["recorded"] == {CHAMPION: champion, CHALLENGER: registry.alias(CHALLENGER)}
    _assert_ledger_agrees(registry, ledger)
    records = ledger.records("churn-model")
    # every intent has exactly one resolution: the dead run's comes from the repair
    intents = records[records["state"] == "pending"]["entry_id"].astype(int)
    resolutions = records[records["intent_id"].notna()]["intent_id"].astype(int)
    assert sorted(intents) == sorted(resolutions)

    # the rollback after the dead run is never refused because of it
    before = registry.alias(CHAMPION)
    result = rollback(registry, ledger, "test", "after a crash")
    assert result["rolled_back"] == before
    assert registry.alias(CHAMPION) == result["champion"] == ("1" if before == "2" else "2")
    _assert_ledger_agrees(registry, ledger)


def test_a_promotion_killed_after_moving_the_champion_on_postgres(
    registry, pg_url, tmp_path, monkeypatch
):

    monkeypatch.setenv("CHURN_WAREHOUSE_URL", pg_url)
    settings = load_settings()
    ledger = PromotionLedger(Warehouse(settings))
    v1, v2, v3 = _three_versions(registry)
    promote(registry, ledger, v1, "test", {})
    promote(registry, ledger, v2, "test", {})
    _die_during(registry, "promote:alias", "promote", v3)
    assert registry.alias(CHAMPION) == v3  # the alias moved; the ledger only intended it
    pending = ledger.pending("churn-model")
    assert list(pending["action"]) == ["promote"] and pending.iloc[0]["version_after"] == v3

    # the next rollback repairs first (confirms v3), then steps back to v2
    assert rollback(registry, ledger, "test") == {"champion": v2, "rolled_back": v3}
    _assert_ledger_agrees(registry, ledger)
    assert champion_history(ledger.history("churn-model")) == [v1, v2]


def test_the_next_promotion_repairs_first(registry, duckdb_settings, tmp_path):
    ledger = PromotionLedger(Warehouse(duckdb_settings))
    v1, v2, v3 = _three_versions(registry)
    promote(registry, ledger, v1, "test", {})
    _die_during(registry, "promote:intent", "promote", v2)
    assert registry.alias(CHAMPION) == v1 and len(ledger.pending("churn-model")) == 1

    promote(registry, ledger, v3, "test", {})
    records = ledger.records("churn-model")
    abandoned = records[records["state"] == "abandoned"]
    assert list(abandoned["version_after"]) == [v2] and list(abandoned["triggered_by"]) == ["test"]
    assert champion_history(ledger.history("churn-model")) == [v1, v3]
    _assert_ledger_agrees(registry, ledger)


def test_status_leaves_an_alias_change_under_way_alone(registry, settings):
    """A repair never judges an intent whose run still holds the ledger's lock: the
    alias may be about to move."""
    ledger = PromotionLedger(Warehouse(settings))
    v1 = _three_versions(registry)[0]
    promote(registry, ledger, v1, "test", {})
    entry = LedgerEntry("promote", "churn-model", CHAMPION, v1, "2", "in-flight")
    with ledger.exclusive():
        ledger.intend(entry)  # the run in flight, between its intent and its alias
        # churn status from another thread (the lock is per open file / connection)
        seen: list[dict] = []
        worker = threading.Thread(
            target=lambda: seen.append(ledger_status(registry, ledger, "status"))
        )
        worker.start()
        worker.join()
    assert seen[0]["repaired"] == [] and seen[0]["pending"] == 1
    assert len(ledger.pending("churn-model")) == 1
    # once the run is gone (it died: the alias never moved), the next status repairs it
    after = ledger_status(registry, ledger, "status")
    assert [fix["state"] for fix in after["repaired"]] == ["abandoned"] and after["agrees"]


OLD_LEDGER = (
    "CREATE TABLE ops.promotion_ledger (entry_id BIGINT, recorded_at TIMESTAMP, "
    "action VARCHAR, model_name VARCHAR, alias VARCHAR, version_before VARCHAR, "
    "version_after VARCHAR, triggered_by VARCHAR, reasons VARCHAR, evidence VARCHAR)"
)


def test_a_ledger_from_before_intents_loads_and_grows(registry, settings):
    """Rows written before intents (no state, no intent_id) count as confirmed; the
    first write adds the columns, and history runs across old and new rows."""
    warehouse = Warehouse(settings)
    v1, v2, _ = _three_versions(registry)
    with warehouse.transaction() as s:
        s.execute("CREATE SCHEMA IF NOT EXISTS ops")
        s.execute(OLD_LEDGER)
        for entry_id, action, alias in ((1, "challenger", CHALLENGER), (2, "promote", CHAMPION)):
            s.execute(
                "INSERT INTO ops.promotion_ledger VALUES "
                "(?, '2025-01-01', ?, 'churn-model', ?, NULL, ?, 'old', '', '{}')",
                (entry_id, action, alias, v1),
            )
    registry.set_alias(CHALLENGER, v1)
    registry.set_alias(CHAMPION, v1)
    ledger = PromotionLedger(warehouse)
    assert list(ledger.history("churn-model")["state"]) == ["confirmed", "confirmed"]
    assert ledger_status(registry, ledger, "status")["agrees"]

    promote(registry, ledger, v2, "test", {})
    assert rollback(registry, ledger, "test") == {"champion": v1, "rolled_back": v2}
    records = ledger.records("churn-model")
    assert records["state"].iloc[:2].isna().all() and len(records) == 8
    assert list(ledger.history("churn-model")["action"]) == [
        "challenger", "promote", "challenger", "promote", "rollback",
    ]  # fmt: skip


def test_churn_status_shows_the_repair(registry, duckdb_settings, tmp_path, capsys):
    from churn_assets import cli

    ledger = PromotionLedger(Warehouse(duckdb_settings))
    v1, v2, _ = _three_versions(registry)
    promote(registry, ledger, v1, "test", {})
    _die_during(registry, "promote:alias", "promote", v2)
    capsys.readouterr()

    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"repaired a half-finished promote to v{v2}: confirmed" in out
    assert "ledger      agrees with the aliases (4 actions recorded)" in out
    assert cli.main(["status"]) == 0  # repaired once: the second status has nothing to do
    out = capsys.readouterr().out
    assert "repaired" not in out and "agrees with the aliases" in out
