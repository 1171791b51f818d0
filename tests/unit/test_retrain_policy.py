"""The retraining rule: one launch per incident, incidents during the cooldown absorbed
by the launch before, a cleared incident forgotten so its return is new."""

from sensors.retrain_policy import Incident, RetrainState

DRIFT = Incident("feature_drift:attr_region", "feature_drift", {"psi": 0.9})
SCORES = Incident("prediction_drift", "prediction_drift")
STALE = Incident("stale_champion:v3", "stale_champion")
HOUR = 3600.0


def test_one_incident_launches_one_retrain() -> None:
    state = RetrainState()
    first = state.decide([DRIFT], now=1000.0, cooldown_seconds=HOUR)
    assert first.launch == DRIFT and first.attached == [DRIFT]
    again = state.decide([DRIFT], now=1060.0, cooldown_seconds=HOUR)
    assert again.launch is None and "all handled" in again.reason
    # long after the cooldown the same incident still launches nothing: it was handled
    assert state.decide([DRIFT], now=1000.0 + 10 * HOUR, cooldown_seconds=HOUR).launch is None


def test_incidents_during_the_cooldown_are_absorbed() -> None:
    state = RetrainState()
    state.decide([DRIFT], now=0.0, cooldown_seconds=HOUR)
    absorbed = state.decide([DRIFT, SCORES], now=600.0, cooldown_seconds=HOUR)
    assert absorbed.launch is None and absorbed.attached == [SCORES]
    assert "absorbed by the retrain launched 600 s ago" in absorbed.reason
    later = state.decide([DRIFT, SCORES, STALE], now=2 * HOUR, cooldown_seconds=HOUR)
    assert later.launch == STALE and later.attached == [STALE]


def test_several_new_incidents_share_one_launch() -> None:
    decision = RetrainState().decide([DRIFT, SCORES], now=0.0, cooldown_seconds=HOUR)
    assert decision.launch == DRIFT and decision.attached == [DRIFT, SCORES]


def test_a_cleared_incident_that_returns_is_new() -> None:
    state = RetrainState()
    state.decide([DRIFT], now=0.0, cooldown_seconds=HOUR)
    assert state.decide([], now=2 * HOUR, cooldown_seconds=HOUR).reason == "no new incident (none)"
    assert state.decide([DRIFT], now=3 * HOUR, cooldown_seconds=HOUR).launch == DRIFT


def test_the_state_survives_the_cursor() -> None:
    state = RetrainState()
    state.decide([DRIFT], now=5.0, cooldown_seconds=HOUR)
    again = RetrainState.from_cursor(state.to_cursor())
    assert again == state and again.history[0]["trigger"] == DRIFT.id
    assert RetrainState.from_cursor(None) == RetrainState()
