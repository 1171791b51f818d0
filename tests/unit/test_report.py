import base64
import io
import math
import re

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from churn_assets.ml.report import (
    METRIC_ORDER,
    PLOT_KEYS,
    render_html,
    render_markdown,
    render_plots,
    write_report,
)

ROWS, FEATURES = 2000, 20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _synthetic(rows: int = ROWS, seed: int = 7):
    """Holdout with real signal: features 0..4 drive churn, the rest are noise; some NaN."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    weights = np.zeros(FEATURES)
    weights[:5] = [1.5, -1.0, 0.8, 0.5, -0.3]
    contributions = np.nan_to_num(x, nan=0.0) * weights + rng.normal(0, 0.02, size=x.shape)
    logit = contributions.sum(axis=1) - 2.5
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(rows) < p).astype(int)
    names = [f"feature_{i:02d}" for i in range(FEATURES)]
    return y, p, contributions, x, names


@pytest.fixture(scope="module")
def data():
    return _synthetic()


@pytest.fixture(scope="module")
def plots(data):
    y, p, contributions, x, names = data
    return render_plots(y, p, contributions, x, names)


def _evaluation(group_name: str = "<script>alert(1)</script>") -> dict:
    metrics = {
        name: {"value": 0.5 + i / 100, "ci_low": 0.4 + i / 100, "ci_high": 0.6 + i / 100}
        for i, name in enumerate(METRIC_ORDER)
    }
    return {
        "model_name": "churn-model",
        "version": "3",
        "holdout": {
            "rows": 9000,
            "churners": 380,
            "as_of_from": "2025-10-01",
            "as_of_to": "2025-10-31",
        },
        "metrics": metrics,
        "threshold": 0.21,
        "business": {
            "revenue_at_risk": 123456.0,
            "economics": {"offer_cost": 20.0, "success_rate": 0.3, "value_months": 12.0},
            "campaign": {
                "threshold": 0.21,
                "contacted": 812,
                "saved_revenue": 54321.0,
                "campaign_cost": 16240.0,
                "net_value": 38081.0,
            },
            "operating_campaign": {
                "threshold": 0.25,
                "contacted": 700,
                "saved_revenue": 41000.0,
                "campaign_cost": 14000.0,
                "net_value": 27000.0,
            },
        },
        "fairness": {
            "plan_tier": {
                "groups": [
                    {
                        "group": group_name,
                        "rows": 12,
                        "churn_rate": 0.0,
                        "auc": float("nan"),
                        "selection_rate": 0.1,
                        "true_positive_rate": float("nan"),
                    },
                    {
                        "group": "pro",
                        "rows": 4000,
                        "churn_rate": 0.05,
                        "auc": 0.8123,
                        "selection_rate": 0.2,
                        "true_positive_rate": 0.7,
                    },
                ],
                "gaps": {"auc": float("nan"), "selection_rate": 0.1, "true_positive_rate": 0.05},
            }
        },
        "oracle": {"roc_auc": 0.9, "brier": 0.03, "auc_gap": 0.3876, "brier_gap": 0.0111},
        "gates": [
            {
                "name": "min_roc_auc",
                "passed": True,
                "value": 0.81,
                "limit": 0.7,
                "detail": "auc above floor",
            },
            {
                "name": "max_ece",
                "passed": False,
                "value": 0.09,
                "limit": 0.05,
                "detail": "ece <too> high",
            },
        ],
    }


def _png_size(png: bytes) -> tuple[int, int]:
    image = mpimg.imread(io.BytesIO(png), format="png")
    return image.shape[1], image.shape[0]


# ----------------------------------------------------------------------------- plots


def test_every_plot_is_a_small_decodable_png(plots):
    assert plt.get_fignums() == []
    assert set(plots) == set(PLOT_KEYS)
    for key, png in plots.items():
        assert png.startswith(PNG_MAGIC), key
        assert len(png) < 150_000, f"{key} is {len(png)} bytes"
        width, height = _png_size(png)
        assert 300 < width < 1000 and 200 < height < 800, (key, width, height)


def test_same_input_gives_identical_pngs_and_sampling_touches_only_shap_plots():
    y, p, contributions, x, names = _synthetic(rows=400)
    sampled = render_plots(y, p, contributions, x, names, max_rows=100, seed=1)
    again = render_plots(y, p, contributions, x, names, max_rows=100, seed=1)
    full = render_plots(y, p, contributions, x, names)
    assert sampled == again
    for key in ("roc", "precision_recall", "calibration", "lift_gain"):
        assert full[key] == sampled[key], key
    assert full["shap_summary"] != sampled["shap_summary"]
    assert plt.get_fignums() == []


def test_degenerate_input_renders_and_leaves_no_figures_open():
    # one class only (AUC undefined) and the most important feature entirely missing
    y, p, contributions, x, names = _synthetic(rows=200)
    x = x.copy()
    x[:, 0] = np.nan
    assert plt.get_fignums() == []
    plots = render_plots(np.zeros_like(y), p, contributions, x, names)
    assert set(plots) == set(PLOT_KEYS)
    assert all(png.startswith(PNG_MAGIC) for png in plots.values())
    assert plt.get_fignums() == []


@pytest.mark.parametrize(
    ("rows_p", "contrib_shape", "x_shape"),
    [(99, (100, 3), (100, 3)), (100, (100, 4), (100, 4)), (100, (100, 3), (100, 2))],
)
def test_mismatched_shapes_are_rejected(rows_p, contrib_shape, x_shape):
    with pytest.raises(ValueError):
        render_plots(
            np.zeros(100),
            np.zeros(rows_p),
            np.zeros(contrib_shape),
            np.zeros(x_shape),
            ["a", "b", "c"],
        )
    assert plt.get_fignums() == []


# ----------------------------------------------------------------------------- markdown


def test_markdown_has_every_metric_with_ci(plots):
    md = render_markdown(_evaluation(), plots)
    for name in METRIC_ORDER:
        assert re.search(rf"^\| {name} \| [0-9.]+ \| \[[0-9.]+, [0-9.]+\] \|$", md, re.M), name
    assert "| roc_auc | 0.5000 | [0.4000, 0.6000] |" in md
    assert "9,000 rows" in md and "380 churners" in md


def test_markdown_embeds_every_plot_as_data_uri(plots):
    md = render_markdown(_evaluation(), plots)
    for key, png in plots.items():
        match = re.search(rf"!\[{key}\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
        assert match, key
        assert base64.b64decode(match.group(1)) == png


def test_markdown_business_oracle_gates_and_fairness(plots):
    md = render_markdown(_evaluation(), plots)
    assert "Revenue at risk: 123,456" in md
    assert "net value 38,081" in md and "812 customers" in md
    assert "operating threshold (chosen on validation): contact scores at or above 0.2500" in md
    assert "net value 27,000" in md
    assert "| roc_auc | 0.5000 | 0.9000 | 0.3876 |" in md
    assert "| min_roc_auc | ✅ pass | 0.8100 | 0.7000 |" in md
    assert "| max_ece | ❌ fail | 0.0900 | 0.0500 | ece &lt;too&gt; high |" in md
    # NaN gap renders as n/a
    assert "| plan_tier | n/a | 0.1000 | 0.0500 |" in md
    text_only = render_markdown(_evaluation(), {})
    assert "nan" not in text_only.lower()


def test_markdown_omits_absent_sections():
    evaluation = _evaluation()
    evaluation["oracle"] = None
    evaluation["gates"] = []
    evaluation["fairness"] = {}
    md = render_markdown(evaluation, {})
    assert "Oracle" not in md and "Gates" not in md and "Fairness" not in md
    assert "data:image" not in md
    assert "| f1_at_threshold |" in md


def test_markdown_escapes_pipes_in_names():
    evaluation = _evaluation(group_name="x")
    evaluation["fairness"] = {"a|b": evaluation["fairness"]["plan_tier"]}
    md = render_markdown(evaluation, {})
    assert "| a\\|b | n/a |" in md


# ----------------------------------------------------------------------------- html


def test_html_escapes_data_and_renders_nan_as_na(plots):
    page = render_html(
        _evaluation(),
        plots,
        title="Churn <model> report",
        extra_markdown_sections={"Model card": "# card\n<img src=x onerror=alert(1)>"},
    )
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<title>Churn &lt;model&gt; report</title>" in page
    assert "ece &lt;too&gt; high" in page
    # the malicious group's AUC and TPR are NaN
    row = re.search(r"<tr><td>&lt;script&gt;.*?</tr>", page)
    assert row is not None
    assert row.group(0).count("n/a") == 2
    assert ">nan<" not in page.lower()


def test_html_is_self_contained_with_all_sections(plots):
    page = render_html(_evaluation(), plots, title="report")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<style>" in page and "<link" not in page and "<script" not in page
    for name in METRIC_ORDER:
        assert f"<td>{name}</td>" in page
    for key, png in plots.items():
        assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{key}"' in page
    assert '<tr class="pass"><td>min_roc_auc</td><td class="result">PASS</td>' in page
    assert '<tr class="fail"><td>max_ece</td><td class="result">FAIL</td>' in page
    assert "<h3>plan_tier</h3>" in page and "<td>pro</td>" in page
    assert "Oracle comparison" in page and "Revenue at risk: 123,456" in page


def test_html_tolerates_missing_optional_parts():
    page = render_html(
        {"model_name": "m", "version": "1", "metrics": {"roc_auc": {"value": math.nan}}},
        {},
        title="t",
    )
    assert "<td>roc_auc</td>" in page and "n/a" in page
    assert "Gates" not in page and "Oracle" not in page


# ----------------------------------------------------------------------------- files


def test_write_report_writes_html_and_pngs(tmp_path, plots):
    target = tmp_path / "nested" / "reports"
    path = write_report(target, "eval_v3", "<html>ok</html>", plots)
    assert path == target / "eval_v3.html"
    assert path.read_text(encoding="utf-8") == "<html>ok</html>"
    written = sorted(p.name for p in (target / "eval_v3_plots").iterdir())
    assert written == sorted(f"{key}.png" for key in plots)
    for key, png in plots.items():
        assert (target / "eval_v3_plots" / f"{key}.png").read_bytes() == png


@pytest.mark.parametrize("name", ["", "..", "../escape", "a/b"])
def test_write_report_refuses_names_that_leave_the_directory(tmp_path, name):
    with pytest.raises(ValueError):
        write_report(tmp_path, name, "<html/>", {})
    with pytest.raises(ValueError):
        write_report(tmp_path, "ok", "<html/>", {name or ".": b"x"})
