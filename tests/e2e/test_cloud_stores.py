"""The train line with its artifacts on GCS (the GCS emulator) and Azure Blob (Azurite): the run
succeeds, a second run is fully cached, and the registered model loads back, hash-verified.

The metadata stays in the project's SQLite file; the store settings reach the CLI as they would
in production: ``${VAR}`` references in conveyor.yaml, values in the environment.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from conveyor.project import Project
from tests.e2e.conftest import conveyor, make_visa_project

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import CloudLocation

pytestmark = [pytest.mark.slow, pytest.mark.service]

# What each store needs, written as conveyor.yaml holds it: the secrets stay in the environment.
STORE_OPTIONS = {
    "gcs": {"endpoint_url": "${CONVEYOR_TEST_GCS_ENDPOINT}", "token": "anon"},
    "azure": {"connection_string": "${CONVEYOR_TEST_AZURE_CONN}"},
}


def _environment(kind: str, loc: CloudLocation) -> dict[str, str]:
    if kind == "gcs":
        return {"CONVEYOR_TEST_GCS_ENDPOINT": loc.storage_options["endpoint_url"]}
    return {"CONVEYOR_TEST_AZURE_CONN": loc.storage_options["connection_string"]}


def _use_store(project: Path, kind: str, loc: CloudLocation) -> None:
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["store"] = {
        **config.get("store", {}),
        "artifacts": loc.uri,
        "storage_options": STORE_OPTIONS[kind],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _run(project: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = conveyor("run", "-p", project, "--json", env=env, timeout=300)
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_train_line_on_a_cloud_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    loc: CloudLocation = request.getfixturevalue(
        {"gcs": "gcs_bucket_uri", "azure": "azure_container_uri"}[kind]
    )
    project = make_visa_project(tmp_path / "visa")
    _use_store(project, kind, loc)
    env = _environment(kind, loc)

    first = _run(project, env)
    assert first["status"] == "succeeded", first
    assert {s["status"] for s in first["steps"]} == {"succeeded"}
    assert not (project / ".conveyor" / "artifacts").exists()  # nothing went to the local disk

    second = _run(project, env)
    assert second["status"] == "succeeded", second
    assert {s["status"] for s in second["steps"]} == {"cached"}

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with Project.load(project) as proj:
        model = proj.load_model("visa-approval@production")
        stored = proj.artifacts.location("0" * 64)
    assert stored.startswith(f"{loc.uri}/sha256/")
    predictions = model.predict(_rows(project))
    assert len(predictions) == 5
    assert set(predictions) <= {"Certified", "Denied"}


def _rows(project: Path) -> Any:
    import pandas as pd

    rows = pd.read_csv(project / "data" / "visa.csv", nrows=5)
    return rows.drop(columns=["case_status"])
