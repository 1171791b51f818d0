"""The feature matrix over the real feature tables: marts plus pivoted attributes."""

import numpy as np

from churn_assets.ml.feature_matrix import FeatureSpec, load_training_frame
from warehouse.connection import Warehouse


def test_training_frame_from_the_built_warehouse(built_settings):
    frame = load_training_frame(Warehouse(built_settings))
    spec = FeatureSpec.fit(frame)
    assert {"attr_segment", "attr_region", "attr_seats_purchased"} <= set(spec.names)
    assert len(spec.names) >= 84 + 7
    x = spec.transform(frame)
    assert x.shape == (len(frame), len(spec.names))
    assert not np.isnan(x[:, spec.names.index("login_count_30d")]).any()
