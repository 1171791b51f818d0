import numpy as np
import pandas as pd
import pytest

from churn_assets.ml.feature_matrix import FeatureSpec, pivot_attributes

LONG = pd.DataFrame(
    {
        "customer_id": ["a", "a", "b", "b"],
        "attribute_name": ["segment", "seats", "segment", "seats"],
        "value_text": ["smb", None, "enterprise", None],
        "value_number": [None, 3.0, None, 250.0],
    }
)


def test_attributes_pivot_into_typed_columns():
    wide = pivot_attributes(LONG).set_index("customer_id")
    assert list(wide.columns) == ["attr_seats", "attr_segment"]
    assert wide.loc["b", "attr_seats"] == 250.0
    assert wide.loc["a", "attr_segment"] == "smb"


def test_spec_orders_features_and_encodes_categories():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "as_of_date": pd.to_datetime(["2025-01-01"] * 3),
            "churned": [0, 1, 0],
            "login_count_30d": [3, 0, 9],
            "current_plan": ["pro", None, "basic"],
        }
    )
    spec = FeatureSpec.fit(frame)
    assert spec.names == ("login_count_30d", "current_plan")
    assert spec.categorical == ["current_plan"]
    x = spec.transform(frame)
    assert x.dtype == np.float32 and x.shape == (3, 2)
    assert x[0].tolist() == [3.0, 1.0] and np.isnan(x[1, 1]) and x[2, 1] == 0.0
    unseen = spec.transform(frame.assign(current_plan=["enterprise", "pro", "basic"]))
    assert np.isnan(unseen[0, 1]), "a category unseen in training is missing, not a wrong code"
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(KeyError, match="login_count_30d"):
        spec.transform(frame.drop(columns=["login_count_30d"]))
