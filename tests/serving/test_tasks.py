"""Every task through the model server and batch scoring, on real tables shipped with
scikit-learn: multiclass (iris with integer classes and with class names, wine), regression
(diabetes) and binary classification with boolean classes (breast cancer). Each table is trained
by the train line in a throw-away project; rows held back from training are what the server,
``conveyor predict`` and (in tests/monitoring/test_tasks.py) the monitor see."""

from __future__ import annotations

import io
import json
import math
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.monitoring.current import read_log
from conveyor.project import Project
from conveyor.serving.app import ServeSettings, create_app
from conveyor.serving.auth import create_key
from conveyor.serving.background import BackgroundServer
from tests.e2e.conftest import RUNNER_ENV

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.testing import Result

pytestmark = pytest.mark.slow

TARGET = "target"
KEY = "row_id"
HELD_BACK = 40
TASKS = {  # table -> (task, classes as the server names them; None for regression)
    "iris": ("classification", ["0", "1", "2"]),
    "iris_names": ("classification", ["setosa", "versicolor", "virginica"]),
    "wine": ("classification", ["0", "1", "2"]),
    "diabetes": ("regression", None),
    "cancer_bool": ("classification", ["False", "True"]),  # breast cancer, 10 columns
}
ENV = RUNNER_ENV


def load_table(name: str) -> pd.DataFrame:
    """A scikit-learn table (offline loaders only) with a ``row_id`` and a ``target`` column."""
    from sklearn import datasets

    if name.startswith("iris"):
        bunch = datasets.load_iris(as_frame=True)
        frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
        if name == "iris_names":
            frame[TARGET] = bunch.target_names[bunch.target]
    elif name == "wine":
        frame = datasets.load_wine(as_frame=True).frame
        frame.columns = [c.replace("/", "_") for c in frame.columns]
    elif name == "diabetes":
        frame = datasets.load_diabetes(as_frame=True, scaled=False).frame
    elif name == "cancer_bool":
        frame = datasets.load_breast_cancer(as_frame=True).frame
        frame.columns = [c.replace(" ", "_") for c in frame.columns]
        frame = frame[[c for c in frame.columns if c.startswith("mean_")] + [TARGET]]
        frame[TARGET] = frame[TARGET].astype(bool)  # malignant or not: True / False
    else:
        raise ValueError(name)
    frame.insert(0, KEY, range(len(frame)))
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def make_project(root: Path, name: str, *, monitoring: dict[str, Any] | None = None) -> Path:
    """A project on table ``name`` with version 1 in production; ``data/current.csv`` holds
    ``HELD_BACK`` rows the model never saw (with their target), ``data/labels.csv`` their
    ``row_id`` and target."""
    task, _ = TASKS[name]
    frame = load_table(name)
    (root / "data").mkdir(parents=True, exist_ok=True)
    frame.iloc[HELD_BACK:].to_csv(root / "data" / "train.csv", index=False)
    held = frame.iloc[:HELD_BACK]
    held.to_csv(root / "data" / "current.csv", index=False)
    held[[KEY, TARGET]].to_csv(root / "data" / "labels.csv", index=False)
    if task == "regression":
        candidate = {"name": "ridge", "estimator": "sklearn.linear_model.Ridge"}
    else:
        candidate = {
            "name": "logreg",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 5000},
        }
    config = {
        "project": name,
        "data": {
            "source": {"type": "csv", "path": "data/train.csv"},
            "target": TARGET,
            "split": {"test_size": 0.25, "stratify": task != "regression", "seed": 0},
        },
        "features": {"drop": [KEY]},
        "training": {"task": task, "candidates": [candidate]},
        "evaluation": {
            "primary": "r2" if task == "regression" else "f1",
            "importance": {"repeats": 1, "max_rows": 200},  # the report, quickly
        },
        "registry": {"model": f"{name}-model"},
        "monitoring": {"id_column": KEY, "drift": {"min_rows": 20}, **(monitoring or {})},
    }
    (root / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    with Project.load(root) as proj:
        proj.run("train")
        # registered and promoted whatever later steps (the HTML report) did
        assert proj.metadata.get_alias(f"{name}-model", "production") == 1
    return root


def project_cache(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``get(name)``: the project of table ``name``, trained on first use."""
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = make_project(tmp_path_factory.mktemp(name), name)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``trained(name)``: the project of table ``name``, trained once per module."""
    return project_cache(tmp_path_factory)


def records(project: Path) -> list[dict[str, Any]]:
    """The held-back rows without their target, as JSON-ready records."""
    frame = pd.read_csv(project / "data" / "current.csv").drop(columns=[TARGET])
    return list(json.loads(frame.to_json(orient="records")))


def invoke(*args: str | Path) -> Result:
    """``conveyor ARGS`` through the Typer app (in process: no interpreter start-up)."""
    return CliRunner(env=ENV).invoke(app, [str(a) for a in args], catch_exceptions=False)


def serve(project: Path, name: str) -> tuple[BackgroundServer, str]:
    """A server of table ``name``'s model in production, and a fresh API key for it (enter
    the server with ``with``)."""
    with Project.load(project) as proj:
        key = create_key(proj.metadata, f"key-{uuid.uuid4().hex[:12]}").token
    settings = ServeSettings(
        project=str(project), model=f"{name}-model@production", log_flush_seconds=0.2
    )
    return BackgroundServer(create_app(settings)), key


def _check_outputs(name: str, predictions: list[Any], probabilities: Any) -> None:
    """The JSON shape of each task's answer."""
    task, classes = TASKS[name]
    assert len(predictions) == HELD_BACK
    if task == "regression":
        assert probabilities is None
        assert all(type(p) is float and math.isfinite(p) for p in predictions)
        return
    assert classes is not None
    assert {str(p) for p in predictions} <= set(classes)
    expected_type = {"iris_names": str, "cancer_bool": bool}.get(name, int)
    assert all(type(p) is expected_type for p in predictions), predictions[:3]
    assert isinstance(probabilities, list) and len(probabilities) == HELD_BACK
    for label, row in zip(predictions, probabilities, strict=True):
        assert sorted(row) == classes  # every class, each a probability
        assert sum(row.values()) == pytest.approx(1.0)
        assert max(row, key=row.get) == str(label)  # the label is the most probable class


@pytest.mark.parametrize("name", list(TASKS))
def test_server_answers_each_task_and_logs_labels_as_they_were(
    trained: Callable[[str], Path], name: str
) -> None:
    project = trained(name)
    task, classes = TASKS[name]
    rows = records(project)
    server, key = serve(project, name)
    with server, httpx.Client(base_url=server.url, headers={"X-API-Key": key}) as client:
        answer = client.post("/v1/predict", json={"records": rows})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        _check_outputs(name, body["predictions"], body["probabilities"])

        csv = (project / "data" / "current.csv").read_bytes()
        scored = client.post("/v1/predict/file", files={"file": ("held.csv", csv, "text/csv")})
        assert scored.status_code == 200, scored.text
        table = pd.read_csv(io.StringIO(scored.text))
        metrics = client.get("/metrics").text
    proba = [c for c in table.columns if c.startswith("proba_")]
    assert proba == [f"proba_{c}" for c in classes or []]
    assert list(table.columns) == [
        *pd.read_csv(project / "data" / "current.csv").columns,
        "prediction",
        *proba,
        "model_name",
        "model_version",
    ]
    if task == "regression":
        assert table["prediction"].tolist() == pytest.approx(body["predictions"])
        assert "conveyor_predictions_total{" not in metrics  # no classes to count
    else:
        assert table[proba].sum(axis=1).to_numpy() == pytest.approx(1.0)
        assert table["prediction"].astype(str).tolist() == [str(p) for p in body["predictions"]]
        assert f'label="{body["predictions"][0]}"' in metrics  # counted by class

    # The log (flushed when the server stopped) keeps each label's type: 2 stays 2, True True.
    with Project.load(project) as proj:
        log = read_log(proj.metadata, proj.artifacts, f"{name}-model")
    served = log[log["request_id"] == body["request_id"]]
    assert served["prediction"].tolist() == body["predictions"]
    assert [c for c in served.columns if c.startswith("proba_")] == proba


@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_conveyor_predict_writes_each_task_s_columns(
    trained: Callable[[str], Path], name: str, tmp_path: Path
) -> None:
    project = trained(name)
    _, classes = TASKS[name]
    out = tmp_path / "scored.parquet"
    done = invoke("predict", "-i", "data/current.csv", "-o", out, "-p", project, "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["rows"] == HELD_BACK
    scored = pd.read_parquet(out)
    with Project.load(project) as proj:
        model = proj.load_model(f"{name}-model@production")
    held = pd.read_csv(project / "data" / "current.csv")
    expected = model.predict(held.drop(columns=[TARGET]))
    proba = [c for c in scored.columns if c.startswith("proba_")]
    assert proba == [f"proba_{c}" for c in classes or []]
    assert scored["model_version"].eq(1).all() and scored[TARGET].tolist() == held[TARGET].tolist()
    if classes is None:
        assert scored["prediction"].dtype == "float64"
        assert scored["prediction"].to_numpy() == pytest.approx(expected)
    else:
        assert scored["prediction"].tolist() == expected.tolist()
        assert scored[proba].sum(axis=1).to_numpy() == pytest.approx(1.0)
