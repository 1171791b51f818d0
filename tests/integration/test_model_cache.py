"""The local model cache under kill -9 and concurrency, with a real MLflow store: a
writer killed mid-copy leaves no entry, only a temporary directory that the next load
ignores and removes; a temporary directory still being written by a live process is
left alone; an entry without its completion mark (a copy cut short) is rebuilt."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_assets.ml.bundle import ModelBundle, train_booster
from churn_assets.ml.feature_matrix import FeatureSpec
from churn_assets.ml.model_cache import COMPLETE_FILE, PARTIAL_MARK
from churn_assets.ml.registry import BUNDLE_ARTIFACT, Registry

ROOT = Path(__file__).resolve().parents[2]
# A cache writer in its own process: copies a bundle file by file through the real
# fill_atomically, says when the first file is down, then waits for `go` (which a
# killed writer never gets) before copying the rest.
WRITER = """
import shutil, sys, time
from pathlib import Path
from churn_assets.ml.model_cache import fill_atomically

entry, source, started, go = (Path(a) for a in sys.argv[1:5])

def slow_copy(staging: Path) -> None:
    target = staging / "bundle"
    target.mkdir()
    files = sorted(p for p in source.iterdir() if p.is_file())
    shutil.copy2(files[0], target / files[0].name)
    started.touch()
    while not go.exists():
        time.sleep(0.01)
    for path in files[1:]:
        shutil.copy2(path, target / path.name)

fill_atomically(entry, slow_copy)
"""


def _bundle() -> tuple[ModelBundle, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (frame["a"] + rng.normal(size=400) > 1).astype(int).to_numpy()
    spec = FeatureSpec(("a", "b"))
    return ModelBundle(
        train_booster(spec.transform(frame), y, {"num_leaves": 4}, 10, 0), spec
    ), frame


@pytest.fixture
def registered(tmp_path: Path) -> tuple[Registry, str, ModelBundle, pd.DataFrame]:
    registry = Registry(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "churn-model", "churn-model", tmp_path / "art"
    )
    bundle, frame = _bundle()
    version = str(registry.log_model(bundle, frame, {}).version)
    return registry, version, bundle, frame


def _start_writer(entry: Path, source: Path, tmp_path: Path, name: str):
    started, go = tmp_path / f"{name}.started", tmp_path / f"{name}.go"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(entry), str(source), str(started), str(go)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 120
    while not started.exists():
        assert writer.poll() is None, "the writer exited before it began copying"
        assert time.monotonic() < deadline, "the writer never began copying"
        time.sleep(0.01)
    return writer, go


def _same_predictions(loaded: ModelBundle, bundle: ModelBundle, frame: pd.DataFrame) -> None:
    np.testing.assert_array_equal(
        loaded.predict(loaded.spec.transform(frame)), bundle.predict(bundle.spec.transform(frame))
    )


def test_a_writer_killed_mid_copy_leaves_nothing_a_reader_would_use(registered, tmp_path) -> None:
    registry, version, bundle, frame = registered
    cache = tmp_path / "cache"
    entry = registry.cache_entry(version, cache)
    source = bundle.save(tmp_path / "source" / BUNDLE_ARTIFACT)
    writer, _ = _start_writer(entry, source, tmp_path, "killed")
    writer.send_signal(signal.SIGKILL)
    assert writer.wait() == -signal.SIGKILL

    assert not entry.exists(), "a half-written entry must never be in place"
    (leftover,) = [p for p in entry.parent.iterdir() if PARTIAL_MARK in p.name]
    assert len(list((leftover / BUNDLE_ARTIFACT).iterdir())) == 1  # really cut short

    loaded = registry.load_bundle(version, cache)
    _same_predictions(loaded, bundle, frame)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # leftover removed
    assert (entry / COMPLETE_FILE).is_file()


def test_a_live_writer_is_left_alone_and_the_first_complete_copy_wins(registered, tmp_path) -> None:
    registry, version, bundle, frame = registered
    cache = tmp_path / "cache"
    entry = registry.cache_entry(version, cache)
    source = bundle.save(tmp_path / "source" / BUNDLE_ARTIFACT)
    writer, go = _start_writer(entry, source, tmp_path, "slow")
    try:
        (partial,) = [p for p in entry.parent.iterdir() if PARTIAL_MARK in p.name]
        loaded = registry.load_bundle(version, cache)  # downloads its own copy meanwhile
        _same_predictions(loaded, bundle, frame)
        assert partial.is_dir(), "another process's copy in progress must not be removed"
        installed = (entry / BUNDLE_ARTIFACT).stat().st_ino
        go.touch()
        assert writer.wait(timeout=120) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert (entry / BUNDLE_ARTIFACT).stat().st_ino == installed  # the first copy stayed
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]
    _same_predictions(registry.load_bundle(version, cache), bundle, frame)


def test_an_entry_without_its_completion_mark_is_rebuilt(registered, tmp_path) -> None:
    registry, version, bundle, frame = registered
    cache = tmp_path / "cache"
    entry = registry.cache_entry(version, cache)
    (entry / BUNDLE_ARTIFACT).mkdir(parents=True)  # as a copy cut short used to leave it
    (entry / BUNDLE_ARTIFACT / "model.txt").write_text("tree\n")
    _same_predictions(registry.load_bundle(version, cache), bundle, frame)
    assert (entry / COMPLETE_FILE).is_file()
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]
