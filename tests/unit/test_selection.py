import numpy as np

from churn_assets.ml.selection import select_features


def test_keeps_signal_and_drops_noise_stably():
    rng = np.random.default_rng(0)
    n = 4000
    x = rng.normal(size=(n, 8)).astype(np.float32)
    logit = -2 + 2.0 * x[:, 0] - 1.5 * x[:, 1] + 1.0 * x[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x[:, 7] = 0.0  # a constant column carries nothing
    names = [f"f{i}" for i in range(8)]
    selection = select_features(x, y, names, seed=0, keep_share=0.9)
    assert {"f0", "f1", "f2"} <= set(selection.kept)
    assert "f7" in selection.dropped
    assert selection.stability["f0"] == 1.0
    assert set(selection.kept) | set(selection.dropped) == set(names)
    again = select_features(x, y, names, seed=0, keep_share=0.9)
    assert again.kept == selection.kept  # seeded: the same features every time
