"""BatchHistogram renders exactly what prometheus_client's Histogram renders for the
same values, bucket bounds included, whether fed one value or a large batch."""

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from serving.metrics import PROBABILITY_BUCKETS, BatchHistogram


def test_batch_histogram_matches_prometheus_histogram() -> None:
    rng = np.random.default_rng(3)
    values = [*rng.random(500).round(3).tolist(), *PROBABILITY_BUCKETS, 0.0, 1.5]
    reference_registry, batch_registry = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("p", "p", buckets=PROBABILITY_BUCKETS, registry=reference_registry)
    batch = BatchHistogram("p", "p", PROBABILITY_BUCKETS)
    batch_registry.register(batch)
    for v in values:
        reference.observe(v)
    batch.observe_many(values[:3])  # the small-batch path
    for v in values[3:5]:
        batch.observe_many([v])
    batch.observe_many(values[5:])  # the numpy path

    def lines(registry: CollectorRegistry) -> dict[str, str]:
        text = generate_latest(registry).decode()
        return dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("p_"))

    got, expected = lines(batch_registry), lines(reference_registry)
    expected.pop("p_created")
    # the sum may differ in the last digit: numpy adds pairwise
    assert float(got.pop("p_sum")) == pytest.approx(float(expected.pop("p_sum")), rel=1e-12)
    assert got == expected
    assert got['p_bucket{le="0.05"}'] != got['p_bucket{le="0.1"}']  # not all in one bucket
