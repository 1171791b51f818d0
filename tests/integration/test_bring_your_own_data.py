"""`churn import` + `churn materialize` on data shapes users bring: a plain purchase
log (no subscriptions, inactivity churn) and a one-row-per-customer snapshot that ships
its own labels."""

import numpy as np
import pandas as pd

from churn_assets import cli
from tests.conftest import FEATURE_GRAPH
from warehouse.connection import Warehouse
from warehouse.settings import load_settings


def _purchase_log(tmp_path, n_customers=80, days=220, seed=1):
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")
    customers = pd.DataFrame(
        {
            "customer_id": [f"shop-{i}" for i in range(n_customers)],
            "signup_at": [
                start - pd.Timedelta(days=int(d)) for d in rng.integers(1, 100, n_customers)
            ],
            "country": rng.choice(["de", "fr", "us"], n_customers),
            "loyalty_points": rng.integers(0, 500, n_customers).astype(float),
        }
    )
    rows = []
    for i, customer_id in enumerate(customers["customer_id"]):
        # some customers stop buying part way through: inactivity churn
        last_day = days if i % 3 else int(rng.integers(60, days))
        for day in range(last_day):
            if rng.random() < 0.15:
                rows.append(
                    (
                        customer_id,
                        start + pd.Timedelta(days=day, hours=int(rng.integers(0, 23))),
                        "purchase",
                        float(rng.integers(5, 80)),
                    )
                )
    events = pd.DataFrame(rows, columns=["customer_id", "occurred_at", "event_type", "value"])
    customers.to_csv(tmp_path / "shop_customers.csv", index=False)
    events.to_parquet(tmp_path / "purchases.parquet", index=False)
    return tmp_path / "shop_customers.csv", tmp_path / "purchases.parquet"


def test_purchase_log_with_inactivity_churn(tmp_path, home, monkeypatch, capsys):
    monkeypatch.setenv("CHURN_DEFINITION", "inactivity")
    monkeypatch.setenv("CHURN_ACTIVITY_EVENT_TYPES", "purchase")
    for table in ("customers", "subscriptions", "events"):  # only the user's data
        for f in (home / "landing" / table).glob("*"):
            f.unlink()
    customers, events = _purchase_log(tmp_path)
    assert cli.main(["import", "--customers", str(customers), "--events", str(events)]) == 0
    assert cli.main(["materialize", "--select", FEATURE_GRAPH]) == 0, capsys.readouterr().out

    wh = Warehouse(load_settings())
    examples = wh.query_df(
        "SELECT label_source, churned, invoice_count_30d, active_days_30d FROM analytics.training_examples"
    )
    assert len(examples) > 100
    assert set(examples["label_source"]) == {"inactivity"}
    assert 0 < examples["churned"].mean() < 0.5
    assert examples["invoice_count_30d"].sum() > 0, "purchases map onto the invoice family"
    assert examples["active_days_30d"].sum() > 0
    build = wh.query_df(
        "SELECT churn_definition, activity_event_types FROM analytics.feature_build"
    )
    assert build.iloc[0].tolist() == ["inactivity", "purchase"]
    attributes = wh.query_df("SELECT DISTINCT attribute_name FROM analytics.customer_attributes")
    assert set(attributes["attribute_name"]) == {"country", "loyalty_points"}


def test_snapshot_that_ships_its_own_labels(tmp_path, home, capsys):
    for table in ("customers", "subscriptions", "events"):
        for f in (home / "landing" / table).glob("*"):
            f.unlink()
    rng = np.random.default_rng(9)
    n = 120
    customers = pd.DataFrame(
        {
            "customer_id": [f"tel-{i}" for i in range(n)],
            "signup_at": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 300, n), unit="D"),
            "contract": rng.choice(["month-to-month", "one_year", "two_year"], n),
            "monthly_charges": rng.uniform(20, 110, n).round(2),
        }
    )
    labels = pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "as_of_date": "2025-06-01",
            "churned": rng.integers(0, 2, n),
        }
    )
    customers.to_csv(tmp_path / "telco.csv", index=False)
    labels.to_csv(tmp_path / "telco_labels.csv", index=False)
    assert (
        cli.main(
            [
                "import",
                "--customers",
                str(tmp_path / "telco.csv"),
                "--labels",
                str(tmp_path / "telco_labels.csv"),
            ]
        )
        == 0
    )
    assert cli.main(["materialize", "--select", FEATURE_GRAPH]) == 0, capsys.readouterr().out

    wh = Warehouse(load_settings())
    examples = wh.query_df(
        "SELECT customer_id, churned, label_source, tenure_days FROM analytics.training_examples"
    )
    assert len(examples) == n
    assert set(examples["label_source"]) == {"shipped"}
    merged = examples.merge(labels, on="customer_id", suffixes=("", "_shipped"))
    assert (merged["churned"] == merged["churned_shipped"]).all()
    assert (examples["tenure_days"] > 0).all()
    assert (
        int(wh.query_df("SELECT count(*) AS n FROM analytics.scoring_features")["n"].iloc[0]) == n
    )


def test_import_refuses_bad_files_and_places_nothing(tmp_path, home, capsys):
    bad = tmp_path / "customers.csv"
    bad.write_text("customer_id,signup_at\nA,2024-01-01\nA,2024-01-02\n")
    before = sorted(p.name for p in (home / "landing" / "customers").iterdir())
    assert cli.main(["import", "--customers", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "customers.csv" in err and "customer_id" in err and "rows 1, 2" in err
    assert sorted(p.name for p in (home / "landing" / "customers").iterdir()) == before
