import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

from warehouse.contract import file_schema, normalize, validate
from warehouse.generator import GeneratorConfig, generate
from warehouse.ground_truth import GroundTruth
from warehouse.landing import landing_files, read_file


def _tables(landing):
    return {
        table: [pq.read_table(p) for p in landing_files(landing, table)]
        for table in ("customers", "subscriptions", "events")
    }


def test_same_seed_same_data_and_other_seed_differs(tmp_path):
    cfg = GeneratorConfig(customers=200, days=60, seed=11, start=dt.date(2025, 3, 1))
    generate(cfg, tmp_path / "a", tmp_path / "ga")
    seen = {}
    # watching the hidden state must not change the world
    generate(cfg, tmp_path / "b", tmp_path / "gb", observe_hidden_state=seen.__setitem__)
    a, b = _tables(tmp_path / "a"), _tables(tmp_path / "b")
    assert all(
        len(a[t]) == len(b[t]) and all(x.equals(y) for x, y in zip(a[t], b[t], strict=True))
        for t in a
    )
    other = GeneratorConfig(customers=200, days=60, seed=12, start=dt.date(2025, 3, 1))
    generate(other, tmp_path / "c", tmp_path / "gc")
    c = _tables(tmp_path / "c")
    assert not all(x.equals(y) for x, y in zip(a["events"], c["events"], strict=False))

    # the observer saw every day, and the state behind exactly the recorded hazard
    assert sorted(seen) == [cfg.start + dt.timedelta(days=t) for t in range(cfg.days)]
    truth = GroundTruth(tmp_path / "gb" / "hazard.parquet")
    day = cfg.start + dt.timedelta(days=40)
    state = seen[day]
    recorded = truth.hazard[
        [truth.customer_ids.tolist().index(c) for c in state["customer_id"]], 40
    ]
    np.testing.assert_allclose(state["daily_hazard"], recorded)
    assert {"engagement", "engagement_mean", "unhappy", "payment_trouble", "frailty"} <= set(state)
    # lower engagement, higher hazard: the state is the one the hazard is computed from
    assert np.corrcoef(state["engagement"], np.log(state["daily_hazard"]))[0, 1] < -0.5


def test_every_batch_meets_the_raw_contract(small_landing):
    landing = small_landing / "landing"
    for table in ("customers", "subscriptions", "events"):
        files = landing_files(landing, table)
        assert files, table
        step = max(1, len(files) // 10) if table == "events" else 1
        for path in files[::step]:
            frame = normalize(table, read_file(path), str(path))
            validate(file_schema(table), frame, str(path))


def test_generator_writes_saas_attributes_and_event_types(small_landing):
    landing = small_landing / "landing"
    customers = pq.read_table(landing_files(landing, "customers")[0]).to_pandas()
    assert {"segment", "region", "company_size", "acquisition_channel", "signup_cohort"} <= set(
        customers
    )
    events = pq.read_table(landing_files(landing, "events")[30]).to_pandas()
    assert {"login", "feature_use", "seats_active", "invoice_paid"} <= set(events["event_type"])


def test_churn_is_learnable_and_its_rate_realistic(tmp_path):
    cfg = GeneratorConfig(customers=4000, days=240, seed=5, start=dt.date(2025, 1, 1))
    summary = generate(cfg, tmp_path / "landing", tmp_path / "gt")
    truth = GroundTruth(summary.ground_truth)
    aucs, rates = [], []
    for day in (120, 150, 180):
        as_of = cfg.start + dt.timedelta(days=day)
        labels = truth.churned_within(as_of, 30)
        p = truth.oracle_probability(labels["customer_id"].to_numpy(), as_of, 30)
        aucs.append(roc_auc_score(labels["churned"], p))
        rates.append(labels["churned"].mean())
    assert 0.85 <= np.mean(aucs) <= 0.92, aucs  # the realistic range the issue asks for
    assert 0.02 <= np.mean(rates) <= 0.15, rates


def test_drift_changes_behaviour_after_its_start(tmp_path):
    base = GeneratorConfig(customers=500, days=60, seed=2, start=dt.date(2025, 1, 1))
    drifted = GeneratorConfig(
        customers=500,
        days=60,
        seed=2,
        start=dt.date(2025, 1, 1),
        drift="price_increase",
        drift_start=dt.date(2025, 2, 1),
    )
    generate(base, tmp_path / "base", tmp_path / "g1")
    generate(drifted, tmp_path / "drift", tmp_path / "g2")

    def invoice_mean(landing, after):
        values = []
        for p in landing_files(landing, "events"):
            if p.stem >= after:
                e = pq.read_table(p).to_pandas()
                values += e.loc[e["event_type"] == "invoice_paid", "value"].tolist()
        return np.mean(values)

    assert invoice_mean(tmp_path / "drift", "2025-02-05") > 1.15 * invoice_mean(
        tmp_path / "base", "2025-02-05"
    )
    # before the drift the two worlds are the same, file for file
    for table in ("customers", "subscriptions", "events"):
        for path in landing_files(tmp_path / "base", table):
            if path.stem < "2025-02-01":
                twin = tmp_path / "drift" / table / path.name
                assert pq.read_table(path).equals(pq.read_table(twin)), path
    # subscriptions in force are re-priced: closed at midnight, reopened 25 % dearer
    subs = pq.read_table(tmp_path / "drift" / "subscriptions" / "2025-02-01.parquet").to_pandas()
    midnight = pd.Timestamp("2025-02-01")
    closed = subs[subs["ended_at"] == midnight].set_index("customer_id")
    reopened = subs[subs["started_at"] == midnight].set_index("customer_id")
    assert len(closed) > 100 and set(closed.index) <= set(reopened.index)
    ratio = reopened.loc[closed.index, "monthly_revenue"] / closed["monthly_revenue"]
    assert np.allclose(ratio, 1.25, atol=0.01)


def test_usage_drop_and_new_region_drifts(tmp_path):
    start, drift_start = dt.date(2025, 1, 1), dt.date(2025, 2, 15)

    def landing_for(kind):
        cfg = GeneratorConfig(
            customers=600, days=90, seed=4, start=start, drift=kind, drift_start=drift_start
        )
        generate(cfg, tmp_path / str(kind), tmp_path / f"g{kind}")
        return tmp_path / str(kind)

    def customers_of(landing):
        return pd.concat(pq.read_table(p).to_pandas() for p in landing_files(landing, "customers"))

    def smb_logins_after(landing):
        customers = customers_of(landing)
        smb = set(customers.loc[customers["segment"] == "smb", "customer_id"])
        total = 0.0
        for p in landing_files(landing, "events"):
            if p.stem >= "2025-03-15":
                e = pq.read_table(p).to_pandas()
                total += e.loc[
                    (e["event_type"] == "login") & e["customer_id"].isin(smb), "value"
                ].sum()
        return total

    assert smb_logins_after(landing_for("usage_drop")) < 0.8 * smb_logins_after(landing_for(None))
    customers = customers_of(landing_for("new_region"))
    new = customers[customers["region"] == "middle_east_africa"]
    assert len(new) > 0 and (new["signup_at"] >= pd.Timestamp(drift_start)).all()
    # every drift kind leaves the world as it was before the drift starts
    for kind in ("usage_drop", "new_region"):
        for table in ("customers", "subscriptions", "events"):
            for path in landing_files(tmp_path / "None", table):
                if path.stem < drift_start.isoformat():
                    twin = pq.read_table(tmp_path / kind / table / path.name)
                    assert pq.read_table(path).equals(twin), (kind, path)


def test_through_lands_the_first_part_and_the_rest_comes_later(tmp_path):
    full = GeneratorConfig(customers=300, days=60, seed=5, start=dt.date(2025, 1, 1))
    generate(full, tmp_path / "full", tmp_path / "g1")
    first = dataclasses.replace(full, through=dt.date(2025, 1, 31))
    generate(first, tmp_path / "part", tmp_path / "g2")
    for table in ("customers", "subscriptions", "events"):
        part = {p.name for p in landing_files(tmp_path / "part", table)}
        assert part and max(part) <= "2025-01-31.parquet"
        expected = {p.name for p in landing_files(tmp_path / "full", table)}
        assert part == {n for n in expected if n <= "2025-01-31.parquet"}
        for name in part:  # the same files as the whole world's
            assert pq.read_table(tmp_path / "part" / table / name).equals(
                pq.read_table(tmp_path / "full" / table / name)
            )
