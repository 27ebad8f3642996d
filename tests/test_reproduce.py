"""``conveyor reproduce``'s scratch project (hardening finding 11): whatever path the run recorded
for schema.yaml, the copy lands inside the scratch folder; a corrupted registered artifact is
never reported as identical."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conveyor.config import parse_config
from conveyor.errors import RegistryError
from conveyor.project import Project
from conveyor.reproduce import SCRATCH_SCHEMA, _scratch_config, _stored_artifact_problem
from conveyor.store.artifacts import open_artifact_store

SCHEMA = "columns:\n  x: {dtype: float}\n"


def _config(schema: str) -> dict[str, object]:
    return {
        "project": "p",
        "data": {"source": {"type": "csv", "path": "d.csv"}, "target": "y", "schema": schema},
        "training": {"candidates": [{"name": "a", "estimator": "sklearn.dummy.DummyClassifier"}]},
        "registry": {"model": "m"},
    }


@pytest.mark.parametrize("where", ["contracts/schema.yaml", "ABSOLUTE", "../outside/schema.yaml"])
def test_the_schema_copy_lands_inside_the_scratch_folder(tmp_path: Path, where: str) -> None:
    root = tmp_path / "project"
    schema = tmp_path / "outside" / "schema.yaml" if where != "contracts/schema.yaml" else None
    path = root / where if schema is None else schema
    path.parent.mkdir(parents=True)
    path.write_text(SCHEMA, encoding="utf-8")
    root.mkdir(exist_ok=True)
    recorded = str(schema) if where == "ABSOLUTE" else where
    config = parse_config(_config(recorded))
    scratch = tmp_path / "scratch"
    made = _scratch_config(Project(root, config), config, pd.DataFrame({"x": [1.0]}), scratch)
    assert made.data is not None and made.data.schema_file == SCRATCH_SCHEMA
    assert (scratch / SCRATCH_SCHEMA).read_text(encoding="utf-8") == SCHEMA
    assert sorted(p.name for p in tmp_path.rglob("schema.yaml")) == ["schema.yaml"] * 2
    assert path.read_text(encoding="utf-8") == SCHEMA  # the original is untouched


def test_a_schema_that_is_gone_is_a_clear_error(tmp_path: Path) -> None:
    config = parse_config(_config("gone/schema.yaml"))
    with pytest.raises(RegistryError, match="data.schema: gone/schema.yaml .* is not a file"):
        _scratch_config(
            Project(tmp_path, config), config, pd.DataFrame({"x": [1.0]}), tmp_path / "s"
        )


def test_a_corrupted_registered_artifact_is_reported(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "artifacts"))
    config = parse_config(_config("schema.yaml"))
    project = Project(tmp_path, config)
    project.__dict__["artifacts"] = store  # the project's store, without opening metadata
    digest = store.put_bytes(b"model bytes")
    assert _stored_artifact_problem(project, digest) is None
    Path(store.location(digest)).write_bytes(b"model bytez")
    problem = _stored_artifact_problem(project, digest)
    assert problem is not None and "cannot be read back" in problem
