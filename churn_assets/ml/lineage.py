"""Lineage identifiers recorded with every model: which data, which dbt code and which
Python code produced it. Each identifier is a stable hash or revision so two runs over
the same inputs tag their models identically and any change shows up as a new value."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

DBT_PROJECT_NAME = "churn_lakehouse"  # `name:` in dbt_project/dbt_project.yml (a test pins it)
FEATURE_MODELS = ("customer_features", "training_examples", "customer_attributes")
DBT_DOCS_INDEX = "dbt_project/target/index.html"  # written by `dbt docs generate`
PACKAGE_NAME = "churn-lakehouse"
GIT_TIMEOUT_SECONDS = 5.0
_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large artifacts stay cheap."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_manifest(manifest_path: Path) -> dict[str, Any]:
    path = Path(manifest_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dbt manifest not found at {path}: run `dbt parse` in dbt_project "
            "(or `make setup`) to generate it"
        )
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def _without_volatile_fields(value: Any) -> Any:
    """Drop what dbt rewrites on every parse without any code change: the `metadata`
    block (generated_at, invocation_id, ...) is removed by the caller; here each
    resource's `created_at` parse timestamp. Resources are recognised by carrying
    `unique_id` and `resource_type`, so a *column* named created_at is kept."""
    if isinstance(value, dict):
        is_resource = "unique_id" in value and "resource_type" in value
        return {
            key: _without_volatile_fields(item)
            for key, item in value.items()
            if not (is_resource and key == "created_at")
        }
    if isinstance(value, list):
        return [_without_volatile_fields(item) for item in value]
    return value


def dbt_manifest_hash(manifest_path: Path) -> str:
    """sha256 of the manifest content that defines models, stable across re-parses of
    unchanged dbt code (so the registry tag only changes when the dbt code does)."""
    manifest = _load_manifest(manifest_path)
    manifest.pop("metadata", None)
    canonical = json.dumps(_without_volatile_fields(manifest), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def dbt_feature_docs(
    manifest_path: Path, models: tuple[str, ...] = FEATURE_MODELS
) -> dict[str, str]:
    """Column name -> description from the dbt models that hold the features; dbt is the
    feature catalog, so the model card reuses its descriptions instead of restating them.
    Models are read in the order given and the first description of a column wins."""
    nodes = _load_manifest(manifest_path).get("nodes", {})
    by_name = {
        node.get("name"): node
        for node in nodes.values()
        if node.get("resource_type") == "model" and node.get("name") in models
    }
    docs: dict[str, str] = {}
    for model in models:
        for name, column in (by_name.get(model, {}).get("columns") or {}).items():
            docs.setdefault(str(name), str(column.get("description") or ""))
    return docs


def dbt_docs_link(model: str, from_dir: Path, project: str = DBT_PROJECT_NAME) -> str:
    """Link to a model's page in the generated dbt docs site, relative to from_dir (the
    directory of the document that links to it, such as the reports directory). The
    docs app has no per-column anchor: the model page lists every column."""
    index = Path(__file__).resolve().parents[2] / DBT_DOCS_INDEX
    target = Path(os.path.relpath(index, Path(from_dir).resolve())).as_posix()
    return f"{target}#!/model/model.{project}.{model}"


def _git(repo_dir: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo_dir), *args],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_SECONDS,
        check=True,
    )
    return result.stdout.strip()


def _package_version() -> str:
    try:
        return f"{PACKAGE_NAME} {importlib.metadata.version(PACKAGE_NAME)}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def code_version(repo_dir: Path) -> str:
    """The git commit of the code, suffixed `-dirty` when tracked files differ from it
    (untracked files such as var/ state do not change what the code does). Outside a
    git checkout (an installed wheel, a container without git) the package version is
    the best available identifier."""
    try:
        revision = _git(repo_dir, "rev-parse", "HEAD")
        changes = _git(repo_dir, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return _package_version()
    return f"{revision}-dirty" if changes else revision


def frame_fingerprint(
    frame: pd.DataFrame, keys: tuple[str, ...] = ("customer_id", "as_of_date")
) -> str:
    """sha256 of a frame's content, independent of row and column order: the same rows
    in any order fingerprint alike, any changed value, column name or dtype does not.
    Rows are ordered by the keys present, ties broken by the row hash, so duplicate keys
    cannot make the order (and so the fingerprint) depend on the input order."""
    columns = sorted(frame.columns, key=str)
    ordered = frame[columns]
    row_hashes = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    sort_frame = pd.DataFrame(
        {f"k{i}": frame[key].to_numpy() for i, key in enumerate(keys) if key in frame.columns}
    )
    sort_frame["row_hash"] = row_hashes
    order = sort_frame.sort_values(list(sort_frame.columns), kind="mergesort").index.to_numpy()
    schema = [[str(name), str(ordered[name].dtype)] for name in columns]
    digest = hashlib.sha256(json.dumps(schema).encode("utf-8"))
    digest.update(row_hashes[order].tobytes())
    return digest.hexdigest()
