"""Lineage identifiers: stable for unchanged inputs, different for any real change."""

import copy
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from churn_assets.ml.lineage import (
    DBT_PROJECT_NAME,
    code_version,
    dbt_docs_link,
    dbt_feature_docs,
    dbt_manifest_hash,
    file_sha256,
    frame_fingerprint,
)
from tests.conftest import ROOT


def _model(name: str, columns: dict[str, str], created_at: float = 1.0) -> dict[str, Any]:
    return {
        "unique_id": f"model.demo.{name}",
        "resource_type": "model",
        "name": name,
        "created_at": created_at,
        "raw_code": f"select * from {name}",
        "columns": {
            col: {"name": col, "description": text, "data_type": "double"}
            for col, text in columns.items()
        },
    }


def _manifest() -> dict[str, Any]:
    customer_features = _model(
        "customer_features", {"tenure_days": "Days since signup.", "created_at": "Row time."}
    )
    training_examples = _model(
        "training_examples", {"tenure_days": "Shadowed description.", "churned": "Label."}
    )
    other = _model("stg_events", {"secret": "Not a feature."})
    test_node = {
        "unique_id": "test.demo.not_null_x",
        "resource_type": "test",
        "name": "customer_features",
        "created_at": 2.0,
        "columns": {"bogus": {"name": "bogus", "description": "From a test node."}},
    }
    nodes = [training_examples, customer_features, other, test_node]
    return {
        "metadata": {"generated_at": "2025-01-01T00:00:00Z", "invocation_id": "a"},
        "nodes": {node["unique_id"]: node for node in nodes},
        "macros": {"macro.demo.m": {"unique_id": "macro.demo.m", "resource_type": "macro"}},
    }


def _write(path: Path, manifest: dict[str, Any]) -> Path:
    path.write_text(json.dumps(manifest))
    return path


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path: Path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"churn" * 300_000)  # larger than one read chunk
    assert file_sha256(path) == hashlib.sha256(b"churn" * 300_000).hexdigest()


def test_manifest_hash_ignores_what_every_parse_rewrites(tmp_path: Path):
    manifest = _manifest()
    reparsed = copy.deepcopy(manifest)
    reparsed["metadata"] = {"generated_at": "2026-06-01T12:00:00Z", "invocation_id": "b"}
    for node in reparsed["nodes"].values():
        node["created_at"] = 99.0
    a = dbt_manifest_hash(_write(tmp_path / "a.json", manifest))
    b = dbt_manifest_hash(_write(tmp_path / "b.json", reparsed))
    assert a == b


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["nodes"]["model.demo.customer_features"].update(raw_code="select 1"),
        # a *column* called created_at is model content, not a parse timestamp
        lambda m: m["nodes"]["model.demo.customer_features"]["columns"]["created_at"].update(
            description="Changed."
        ),
        lambda m: m["nodes"].pop("model.demo.stg_events"),
    ],
)
def test_manifest_hash_changes_with_the_models(tmp_path: Path, change: Any):
    manifest = _manifest()
    changed = copy.deepcopy(manifest)
    change(changed)
    assert dbt_manifest_hash(_write(tmp_path / "a.json", manifest)) != dbt_manifest_hash(
        _write(tmp_path / "b.json", changed)
    )


def test_missing_manifest_says_how_to_make_it(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"dbt parse.*make setup"):
        dbt_manifest_hash(tmp_path / "target" / "manifest.json")
    with pytest.raises(FileNotFoundError, match="dbt parse"):
        dbt_feature_docs(tmp_path / "nope.json")


def test_feature_docs_come_from_the_named_models_first_model_wins(tmp_path: Path):
    docs = dbt_feature_docs(_write(tmp_path / "m.json", _manifest()))
    assert docs == {
        "tenure_days": "Days since signup.",  # customer_features precedes training_examples
        "created_at": "Row time.",
        "churned": "Label.",
    }
    only_training = dbt_feature_docs(tmp_path / "m.json", models=("training_examples",))
    assert only_training["tenure_days"] == "Shadowed description."


def test_feature_docs_from_the_real_manifest_document_the_features():
    manifest = ROOT / "dbt_project" / "target" / "manifest.json"  # conftest runs dbt parse
    docs = dbt_feature_docs(manifest)
    assert len(docs) >= 60
    assert docs["customer_id"] and docs["as_of_date"]
    assert len(dbt_manifest_hash(manifest)) == 64


def test_docs_link_points_at_the_model_page_of_this_project():
    project = yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text())
    assert project["name"] == DBT_PROJECT_NAME
    page = f"#!/model/model.{DBT_PROJECT_NAME}.customer_features"
    assert dbt_docs_link("customer_features", ROOT) == f"dbt_project/target/index.html{page}"
    # from the reports directory, where the model card lives, the link still resolves
    reports = ROOT / "var" / "reports"
    link = dbt_docs_link("customer_features", reports)
    assert link == f"../../dbt_project/target/index.html{page}"
    assert (reports / link.split("#")[0]).resolve() == ROOT / "dbt_project/target/index.html"
    assert dbt_docs_link("m", ROOT, project="p").endswith("#!/model/model.p.m")


def _git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "commit.gpgsign=false"]
    done = subprocess.run(
        ["git", *identity, "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_code_version_is_the_commit_and_dirty_only_for_tracked_changes(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "tracked.py").write_text("x = 1\n")
    _git(repo, "add", "tracked.py")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")
    assert code_version(repo) == head
    (repo / "untracked.txt").write_text("runtime state\n")
    assert code_version(repo) == head
    (repo / "tracked.py").write_text("x = 2\n")
    assert code_version(repo) == f"{head}-dirty"


def test_code_version_without_a_repo_or_git_falls_back_to_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repo above tmp_path
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    fallback = code_version(not_a_repo)
    assert fallback.startswith("churn-lakehouse ") or fallback == "unknown"
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # git cannot be found
    assert code_version(ROOT) == fallback


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c1"],
            "as_of_date": pd.to_datetime(["2025-01-01", "2025-01-01", "2025-01-01", "2025-02-01"]),
            "logins_30d": [3.0, np.nan, 0.0, 7.0],
            "plan": pd.Categorical(["pro", "basic", "pro", "pro"]),
        }
    )


def test_fingerprint_ignores_row_and_column_order():
    frame = _frame()
    shuffled = frame.sample(frac=1.0, random_state=4)[list(reversed(frame.columns))]
    assert frame_fingerprint(shuffled) == frame_fingerprint(frame)
    assert frame_fingerprint(frame.set_index("customer_id", drop=False)) == frame_fingerprint(frame)


def test_fingerprint_is_order_invariant_even_with_duplicate_keys():
    frame = pd.DataFrame({"customer_id": ["a", "a", "a"], "as_of_date": [1, 1, 1], "x": [1, 2, 3]})
    assert frame_fingerprint(frame) == frame_fingerprint(frame.iloc[::-1])


def test_fingerprint_changes_with_any_value_name_or_dtype():
    frame = _frame()
    base = frame_fingerprint(frame)
    changed_value = frame.copy()
    changed_value.loc[1, "logins_30d"] = 0.0  # NaN -> 0 is a change
    renamed = frame.rename(columns={"logins_30d": "logins_90d"})
    retyped = frame.astype({"logins_30d": "float32"})
    fewer_rows = frame.iloc[:3]
    fingerprints = {base, *(frame_fingerprint(f) for f in (changed_value, renamed, retyped))}
    fingerprints.add(frame_fingerprint(fewer_rows))
    assert len(fingerprints) == 5
    assert frame_fingerprint(frame.copy()) == base  # deterministic


def test_fingerprint_works_without_the_key_columns():
    frame = pd.DataFrame({"x": [1, 2, 3]})
    assert frame_fingerprint(frame) == frame_fingerprint(frame.iloc[[2, 0, 1]])
    assert len(frame_fingerprint(frame.iloc[:0])) == 64
