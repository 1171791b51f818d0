"""`churn generate` and `churn demo --no-serve` on a fresh home, as a new user runs them."""

from churn_assets import cli
from tests.conftest import FEATURE_GRAPH
from warehouse.settings import load_settings


def test_generate_then_demo_without_serving(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CHURN_WAREHOUSE_URL", raising=False)
    monkeypatch.setattr(cli, "DEMO_CUSTOMERS", 250)
    monkeypatch.setattr(cli, "DEMO_DAYS", 150)

    # model training is covered by tests/e2e/test_model_lifecycle.py on a larger data set
    assert cli.main(["demo", "--no-serve", "--select", FEATURE_GRAPH]) == 0
    out = capsys.readouterr().out
    assert "generating the default data set" in out
    assert "Done in" in out and "250 customers" in out
    assert "Run succeeded" in out and "Pipeline finished" in out
    assert load_settings().duckdb_path.exists()

    # a second demo reuses the data: nothing is generated (a cheap selection suffices)
    assert cli.main(["demo", "--no-serve", "--select", "group:raw"]) == 0
    assert "generating" not in capsys.readouterr().out

    args = ["generate", "--customers", "50", "--days", "30", "--seed", "1", "--start", "2025-01-01"]
    assert cli.main([*args, "--drift", "usage_drop"]) == 0
    assert "drift usage_drop from 2025-01-16" in capsys.readouterr().out
