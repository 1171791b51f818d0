"""The prediction-log stream alerts fire when the drain stops and stay quiet while it
runs: Prometheus's own rule unit tests (ops/prometheus/tests/), run by promtool."""

import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "tests"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_stream_backlog_alerts_fire_only_when_the_drain_stops() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", str(TESTS / "prediction-log.test.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
