"""`churn status` judges each asset against its freshness policy's windows."""

import datetime as dt

from churn_assets.status import freshness

DAY = 86_400
WARN, FAIL = dt.timedelta(days=2), dt.timedelta(days=7)


def test_states_at_the_window_edges() -> None:
    assert freshness(None, WARN, FAIL)["state"] == "never"
    assert freshness(2 * DAY, WARN, FAIL)["state"] == "fresh"  # at the edge: not yet late
    assert freshness(2 * DAY + 1, WARN, FAIL)["state"] == "warn"
    assert freshness(7 * DAY + 1, WARN, FAIL)["state"] == "fail"
    assert freshness(3 * DAY, None, FAIL)["state"] == "fresh"  # no warn window
    assert freshness(36 * 3600, WARN, FAIL) == {
        "state": "fresh", "age_hours": 36.0, "warn_after_hours": 48.0, "fail_after_hours": 168.0,
    }  # fmt: skip
