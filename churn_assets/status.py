"""`churn status`: what is materialized, how the checks went, how fresh the data is."""

import datetime as dt
from typing import Any

import dagster as dg

from warehouse.connection import LEDGER_TABLE, Warehouse
from warehouse.contract import RAW_SCHEMA

FRESHNESS_COLUMNS = {
    "customers": "signup_at",
    "subscriptions": "started_at",
    "events": "occurred_at",
    "labels": "as_of_date",
}


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).isoformat(timespec="seconds")
    return str(value)


def collect_status(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse: Warehouse,
    models: dict | None = None,
) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        event = instance.get_latest_materialization_event(key)
        row_count = None
        if event and event.asset_materialization:
            meta = event.asset_materialization.metadata.get("dagster/row_count")
            row_count = meta.value if meta else None
        assets[key.to_user_string()] = {
            "materialized_at": _iso(event.timestamp) if event else None,
            "row_count": row_count,
        }
    check_keys = list(graph.asset_check_keys)
    executions = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    checks = {}
    for check_key in sorted(check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        record = executions.get(check_key)
        status = record.status.value if record else "NEVER_RUN"
        checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = status
    return {
        "warehouse": warehouse.describe(),
        "assets": assets,
        "checks": checks,
        "freshness": data_freshness(warehouse),
        "asset_freshness": asset_freshness(graph, instance),
        "models": models,
    }


def asset_freshness(
    graph: Any, instance: dg.DagsterInstance, now: float | None = None
) -> dict[str, dict[str, object]]:
    """Every asset with a time-window freshness policy, judged on its last
    materialization at `now` (epoch seconds; default: the present). The graph is a
    Definitions' or a repository's asset graph."""
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        # time-window policies (the only kind used here) carry fail and warn windows
        policy = graph.get(key).freshness_policy
        fail, warn = getattr(policy, "fail_window", None), getattr(policy, "warn_window", None)
        if fail is None:
            continue
        event = instance.get_latest_materialization_event(key)
        out[key.to_user_string()] = freshness(
            now - event.timestamp if event else None,
            warn.to_timedelta() if warn else None,
            fail.to_timedelta(),
        )
    return out


def freshness(
    age_seconds: float | None, warn: dt.timedelta | None, fail: dt.timedelta
) -> dict[str, object]:
    """An asset's state under its freshness policy: fresh, warn, fail or never."""
    if age_seconds is None:
        state = "never"
    elif age_seconds > fail.total_seconds():
        state = "fail"
    elif warn is not None and age_seconds > warn.total_seconds():
        state = "warn"
    else:
        state = "fresh"
    return {
        "state": state,
        "age_hours": None if age_seconds is None else round(age_seconds / 3600, 1),
        "warn_after_hours": None if warn is None else warn.total_seconds() / 3600,
        "fail_after_hours": fail.total_seconds() / 3600,
    }


def data_freshness(warehouse: Warehouse) -> dict:
    """Newest timestamp per raw table and the last ingestion, straight from the warehouse."""
    if not warehouse.table_exists(LEDGER_TABLE):
        return {"ingested": False}
    out: dict = {"ingested": True}
    for table, column in FRESHNESS_COLUMNS.items():
        row = warehouse.query_df(
            f"SELECT count(*) AS n, max({column}) AS newest FROM {RAW_SCHEMA}.{table}"
        ).iloc[0]
        out[table] = {"rows": int(row["n"]), "newest": _iso(row["newest"]) if row["n"] else None}
    last = warehouse.query_df(f"SELECT max(ingested_at) AS at FROM {LEDGER_TABLE}")["at"].iloc[0]
    out["last_ingestion"] = _iso(last) if last is not None and str(last) != "NaT" else None
    return out


def print_status(status: dict) -> None:
    print(f"Warehouse: {status['warehouse']}")
    print("\nAssets")
    for key, info in status["assets"].items():
        when = info["materialized_at"] or "never materialized"
        rows = f"  {info['row_count']:,} rows" if info["row_count"] is not None else ""
        print(f"  {key:<32} {when}{rows}")
    counts: dict[str, int] = {}
    for state in status["checks"].values():
        counts[state] = counts.get(state, 0) + 1
    print("\nChecks: " + ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items())))
    for name, state in status["checks"].items():
        if state not in ("SUCCEEDED",):
            print(f"  {state.lower():<10} {name}")
    _print_models(status.get("models"))
    print("\nFreshness (policies; Dagster shows the same in its UI)")
    for key, info in status["asset_freshness"].items():
        age = "never materialized" if info["age_hours"] is None else f"{info['age_hours']} h old"
        print(f"  {info['state']:<6} {key:<32} {age} (fail after {info['fail_after_hours']:.0f} h)")
    fresh = status["freshness"]
    print("\nData freshness")
    if not fresh.get("ingested"):
        print("  nothing ingested yet: run `churn demo` or `churn import`")
        return
    for table in FRESHNESS_COLUMNS:
        info = fresh[table]
        print(f"  {table:<14} {info['rows']:>12,} rows, newest {info['newest']}")
    print(f"  last ingestion {fresh['last_ingestion']}")


def _print_models(models: dict | None) -> None:
    print("\nModels")
    ledger = (models or {}).get("ledger")
    if not models or not (models.get("champion") or models.get("challenger")):
        print("  no promoted model yet: run `churn materialize` (or `make demo`)")
    else:
        for alias in ("champion", "challenger"):
            info = models.get(alias)
            if not info:
                print(f"  {alias:<11} none")
                continue
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(info["metrics"].items()))
            print(f"  {alias:<11} {models['model_name']} v{info['version']}  {metrics}")
    if ledger:
        _print_ledger(ledger)


def _print_ledger(ledger: dict) -> None:
    """Repairs of half-finished alias changes, and whether ledger and aliases agree."""
    for fix in ledger["repaired"]:
        moved = "had moved" if fix["state"] == "confirmed" else "had not moved"
        print(
            f"  ledger      repaired a half-finished {fix['action']} to "
            f"v{fix['version_after']}: {fix['state']} (the {fix['alias']} alias {moved})"
        )
    if ledger["pending"]:
        print(f"  ledger      {ledger['pending']} alias change(s) under way in another process")
    if ledger["agrees"]:
        print(f"  ledger      agrees with the aliases ({ledger['entries']} actions recorded)")
        return
    for alias, recorded in ledger["recorded"].items():
        actual = ledger["aliases"][alias]
        if recorded != actual:
            print(
                f"  ledger      DISAGREES: {alias} alias v{actual or '-'}, ledger "
                f"v{recorded or '-'} (moved outside churn promote / rollback?)"
            )
