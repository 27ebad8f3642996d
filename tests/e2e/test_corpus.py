"""Every corpus table as a new user would take it: ``conveyor init --from`` -> ``conveyor run``
(no edits; a smaller tuning budget only, to keep CI fast) -> a registered model that beats its
baseline -> one served request -> ``conveyor monitor --current`` on held-back rows.

Tables above 6,000 rows are cut to a seeded 6,000 here (same columns, dtypes and quirks) so the
suite stays within CI's time; ``bench/quality.py`` runs them whole."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
import pytest

from conveyor import _yaml
from conveyor.project import Project
from conveyor.serving.app import ServeSettings, create_app
from conveyor.serving.auth import create_key
from conveyor.serving.background import BackgroundServer
from tests.corpus.tables import TABLES, CorpusTable, write_split
from tests.e2e.conftest import conveyor

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

TRIALS = 3  # tuning trials per candidate in tests (init --from chooses 4-10)
MAX_ROWS = 6_000


def _record(holdout: Path, target: str) -> dict[str, Any]:
    """The first held-back row, without its target, as a client would send it."""
    frame = pd.read_csv(holdout).drop(columns=[target]).head(1)
    [record] = json.loads(frame.to_json(orient="records"))
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_init_run_serve_monitor(table: CorpusTable, tmp_path: Path) -> None:
    frame = table.load()
    if len(frame) > MAX_ROWS:
        frame = frame.sample(MAX_ROWS, random_state=0).sort_index()
    train_csv, holdout_csv = write_split(table, tmp_path / "data", frame=frame)
    project = tmp_path / "project"
    conveyor("init", project, "--from", train_csv, "--target", table.target, timeout=120)
    config = _yaml.load((project / "conveyor.yaml").read_text(encoding="utf-8"))
    expected = "regression" if table.task == "regression" else "classification"
    assert config["training"]["task"] == expected

    run = conveyor(
        "run", "-p", project, "--json", "--set", f"training.tuning.trials={TRIALS}", timeout=900
    )
    summary = json.loads(run.stdout)
    assert summary["status"] == "succeeded", summary
    model = f"{config['registry']['model']}"
    with Project.load(project) as proj:
        version = proj.metadata.get_model_version(model, 1)
        assert version.status == "approved", version.reason
        result_run = proj.metadata.get_run(summary["run_id"])
        primary = config["evaluation"]["primary"]
        assert result_run.metrics[f"test.{primary}"] > result_run.metrics[f"baseline.{primary}"]
        key = create_key(proj.metadata, "corpus").token

    settings = ServeSettings(project=str(project), model=f"{model}@production")
    with BackgroundServer(create_app(settings)) as server:
        response = httpx.post(
            f"{server.url}/v1/predict",
            json={"records": [_record(holdout_csv, table.target)]},
            headers={"X-API-Key": key},
            timeout=60,
        )
    assert response.status_code == 200, response.text
    body = response.json()
    [prediction] = body["predictions"]
    if table.task == "regression":
        assert isinstance(prediction, int | float) and body["probabilities"] is None
    else:
        [probabilities] = body["probabilities"]
        assert str(prediction) in probabilities
        assert abs(sum(probabilities.values()) - 1) < 1e-6

    monitored = conveyor(
        "monitor", "-p", project, "--current", holdout_csv, "--json", timeout=300, check=False
    )
    assert monitored.returncode == 0, monitored.stderr
    report = json.loads(monitored.stdout)
    assert report["prediction"]["outputs"], report.keys()
    assert report["task"] == expected
