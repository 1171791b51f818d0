"""The online_features asset as a gate: a sync whose vectors do not match the warehouse
fails its blocking parity check, is dropped, and the live sync stays as it was."""

import redis

from churn_assets.defs.online import PARITY_CHECK
from churn_assets.ml.registry import CHAMPION, Registry
from tests.serving.conftest import TEST_REDIS_URL, run_online_features
from warehouse.online_store import OnlineStore, pointer_key


def test_a_sync_that_fails_parity_never_goes_live(served_home, monkeypatch) -> None:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    tracking_uri = f"sqlite:///{served_home / 'mlflow.db'}"
    registry = Registry(tracking_uri, "churn-model", "churn-model", served_home / "mlartifacts")
    fs_version = registry.load_bundle(registry.alias(CHAMPION), served_home / "cache").spec.version
    live_before = client.get(pointer_key(fs_version))
    assert live_before is not None
    staged: list[str] = []
    real_stage = OnlineStore.stage

    def stage_with_a_bad_encoder(self, *args, **kwargs):
        """The real write, then every vector's last byte flipped, as a broken encoder
        or a partial write would leave it."""
        sync_id = real_stage(self, *args, **kwargs)
        staged.append(sync_id)
        keys = list(client.scan_iter(f"churn:fv:{sync_id}:*", count=10_000))
        values = client.mget(keys)
        client.mset({k: v[:-1] + bytes([v[-1] ^ 0xFF]) for k, v in zip(keys, values, strict=True)})
        return sync_id

    monkeypatch.setattr(OnlineStore, "stage", stage_with_a_bad_encoder)
    result = run_online_features(served_home, tracking_uri)
    assert not result.success  # a blocking check failed: the run says so
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == PARITY_CHECK and not check.passed
    assert "the sync was dropped" in check.description
    (materialization,) = result.asset_materializations_for_node("online_features")
    assert materialization.metadata["published"].value is False
    assert client.get(pointer_key(fs_version)) == live_before
    assert staged and not list(client.scan_iter(f"churn:fv:{staged[0]}:*", count=10_000))
