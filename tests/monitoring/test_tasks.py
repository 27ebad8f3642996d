"""Monitoring for every task: prediction drift (the class mix and a probability for
classifiers, the predicted value for regression) and performance from labels (accuracy and
macro F1 for multiclass, F1 for binary with boolean classes, RMSE/MAE/R2 for regression), from
a file and from the server's prediction log, then ``conveyor watch --once`` and a retrain.

The projects are real scikit-learn tables trained by the train line (tests/serving/test_tasks.py
builds them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from conveyor.monitoring.drift import DriftSettings, detect
from conveyor.monitoring.monitor import outputs_of
from conveyor.monitoring.profile import build_profile, label_text
from conveyor.project import Project
from conveyor.watch import cycle
from tests.serving.test_tasks import (
    HELD_BACK,
    KEY,
    TARGET,
    TASKS,
    invoke,
    make_project,
    project_cache,
    records,
    serve,
)

if TYPE_CHECKING:
    from collections.abc import Callable

OUTPUTS = {"prediction", "probability", "confidence"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``trained(name)``: the project of table ``name``, trained once per module (copy it
    before serving it: the prediction log is read back)."""
    return project_cache(tmp_path_factory)


def _copy(trained: Callable[[str], Path], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained(name), tmp_path / name))


def _monitor(project: Path, *args: str | Path) -> dict[str, Any]:
    done = invoke("monitor", "-p", project, "--no-alerts", "--json", *args)
    assert done.exit_code == 0, done.output
    report: dict[str, Any] = json.loads(done.output)
    return report


def _metrics(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in report["performance"]["metrics"]}


def _model_predictions(project: Path, name: str, frame: pd.DataFrame) -> Any:
    with Project.load(project) as proj:
        model = proj.load_model(f"{name}-model@production")
    return model.predict(frame.drop(columns=[TARGET]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris", "iris_names"])
def test_multiclass_file_check_has_class_mix_drift_and_macro_scores(
    trained: Callable[[str], Path], name: str
) -> None:
    project = trained(name)
    report = _monitor(project, "--current", "data/current.csv", "--labels", "data/labels.csv")
    outputs = {o["column"]: o for o in report["drift"]["outputs"]}
    assert "prediction" in outputs and set(outputs) <= OUTPUTS and len(outputs) == 2
    prediction = outputs["prediction"]
    assert prediction["kind"] == "categorical" and prediction["method"] == "chi2"
    assert set(prediction["bins"]) == set(TASKS[name][1] or ())  # the three classes
    assert prediction["verdict"] in ("ok", "drift") and prediction["n_current"] == HELD_BACK
    assert report["task"] == "classification"
    assert {o["output"] for o in report["prediction"]["outputs"]} == set(outputs)
    assert all(o["meaning"] != o["output"] for o in report["prediction"]["outputs"])

    held = pd.read_csv(project / "data" / "current.csv")
    predicted = _model_predictions(project, name, held)
    scores = _metrics(report)
    assert report["performance"]["rows"] == HELD_BACK
    accuracy = skm.accuracy_score(held.target, predicted)
    assert scores["accuracy"]["current"] == pytest.approx(accuracy)
    macro = skm.f1_score(held.target, predicted, average="macro")
    assert scores["f1"]["current"] == pytest.approx(macro)
    assert scores["f1"]["training"] is not None and scores["f1"]["change"] is not None
    assert {"balanced_accuracy", "log_loss"} <= set(scores)


@pytest.mark.slow
def test_int_classes_match_labels_read_back_as_floats(
    trained: Callable[[str], Path], tmp_path: Path
) -> None:
    """A labels file with gaps turns class 2 into 2.0: still class 2; the gaps are counted."""
    project = trained("iris")
    labels = pd.read_csv(project / "data" / "labels.csv")
    labels.loc[:4, TARGET] = np.nan  # five outcomes not known yet
    assert labels[TARGET].dtype == "float64"
    labels.to_csv(tmp_path / "labels.csv", index=False)
    report = _monitor(project, "--current", "data/current.csv", "--labels", tmp_path / "labels.csv")
    held = pd.read_csv(project / "data" / "current.csv").iloc[5:]
    predicted = _model_predictions(project, "iris", held)
    assert report["performance"]["rows"] == HELD_BACK - 5
    assert report["performance"]["unlabelled"] == 5
    accuracy = skm.accuracy_score(held.target, predicted)
    assert _metrics(report)["accuracy"]["current"] == pytest.approx(accuracy)


@pytest.mark.slow
def test_regression_check_has_value_drift_and_error_scores(
    trained: Callable[[str], Path], tmp_path: Path
) -> None:
    project = trained("diabetes")
    report = _monitor(project, "--current", "data/current.csv", "--labels", "data/labels.csv")
    (prediction,) = report["drift"]["outputs"]
    assert prediction["column"] == "prediction" and prediction["kind"] == "numeric"
    assert prediction["method"] == "ks" and prediction["verdict"] == "ok"
    assert report["drift"]["prediction_drift"] is False
    assert report["prediction"]["outputs"][0]["meaning"] == "the predicted value"
    held = pd.read_csv(project / "data" / "current.csv")
    predicted = _model_predictions(project, "diabetes", held)
    scores = _metrics(report)
    assert set(scores) >= {"rmse", "mae", "r2"}
    rmse = skm.mean_squared_error(held.target, predicted) ** 0.5
    assert scores["rmse"]["current"] == pytest.approx(rmse)
    mae = skm.mean_absolute_error(held.target, predicted)
    assert scores["mae"]["current"] == pytest.approx(mae)
    assert scores["r2"]["current"] == pytest.approx(skm.r2_score(held.target, predicted))
    assert scores["r2"]["training"] is not None

    # heavier, older patients with higher blood pressure: the predicted progression moves up
    shifted = held.assign(bmi=held.bmi * 1.4, bp=held.bp * 1.3, s5=held.s5 * 1.2)
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    drifted = _monitor(project, "--current", tmp_path / "shifted.csv")
    (prediction,) = drifted["drift"]["outputs"]
    assert prediction["verdict"] == "drift" and prediction["adjusted_p_value"] < 0.001
    assert drifted["drift"]["prediction_drift"] is True
    assert drifted["prediction"]["drifted"] is True
    shares = np.asarray(prediction["current_share"])
    assert shares[-3:].sum() > 0.6  # most rows now in the reference's top three bins


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris", "diabetes", "cancer_bool"])
def test_served_rows_are_monitored_with_labels_then_watched(
    trained: Callable[[str], Path], tmp_path: Path, name: str
) -> None:
    project = _copy(trained, name, tmp_path)
    task, classes = TASKS[name]
    server, key = serve(project, name)
    with server, httpx.Client(base_url=server.url, headers={"X-API-Key": key}) as client:
        rows = records(project)
        for start in range(0, len(rows), 10):
            answer = client.post("/v1/predict", json={"records": rows[start : start + 10]})
            assert answer.status_code == 200, answer.text

    report = _monitor(project, "--labels", "data/labels.csv", "--on", KEY)
    assert report["source"].startswith("the prediction log")
    assert report["drift"]["n_current"] == HELD_BACK
    outputs = {o["column"]: o for o in report["drift"]["outputs"]}
    assert all(o["verdict"] in ("ok", "drift") for o in outputs.values())
    scores = _metrics(report)
    held = pd.read_csv(project / "data" / "current.csv")
    predicted = _model_predictions(project, name, held)
    if task == "regression":
        assert set(outputs) == {"prediction"} and outputs["prediction"]["kind"] == "numeric"
        assert scores["mae"]["current"] == pytest.approx(
            skm.mean_absolute_error(held.target, predicted)
        )
    else:
        assert "prediction" in outputs and len(outputs) == 2
        assert set(outputs["prediction"]["bins"]) <= set(classes or ())
        average = "binary" if len(classes or ()) == 2 else "macro"
        f1 = skm.f1_score(held.target, predicted, average=average)  # True is the positive class
        assert scores["f1"]["current"] == pytest.approx(f1)

    done = invoke("watch", "--once", "-p", project, "--json")
    assert done.exit_code == 0, done.output
    watched = json.loads(done.output)
    assert watched["check_error"] is None and watched["retrained"] is False
    assert watched["check"]["n_current"] == HELD_BACK and watched["check"]["outputs"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris_names", "diabetes"])
def test_watch_retrains_each_task_on_new_data(tmp_path: Path, name: str) -> None:
    retrain = {"retrain": {"on_new_data": True, "cooldown_minutes": 0}, "alerts": []}
    project = make_project(tmp_path / name, name, monitoring=retrain)
    with Project.load(project) as proj:
        first = cycle(proj)  # the first cycle only notes the source's checksum
        assert not first.retrained
        held = pd.read_csv(project / "data" / "current.csv")
        held.to_csv(project / "data" / "train.csv", mode="a", header=False, index=False)
        second = cycle(proj)
    assert second.retrained and [t.kind for t in second.triggers] == ["new_data"]
    assert second.decision is not None and second.decision.version == 2
    assert second.decision.status in ("approved", "rejected") and second.decision.reason


# -- the outputs' profile, without training ---------------------------------------------------


def test_multiclass_probabilities_are_profiled_as_the_predicted_class_confidence() -> None:
    rng = np.random.default_rng(0)
    classes = np.array([0, 1, 2])

    def confident(alpha: list[float], n: int) -> np.ndarray[Any, Any]:
        """``n`` rows of class probabilities, the likeliest class at random per row."""
        proba = rng.dirichlet(alpha, n)
        turn = (np.arange(3)[None, :] - rng.integers(0, 3, n)[:, None]) % 3
        return np.take_along_axis(proba, turn, axis=1)

    sure = confident([20, 1, 1], 2000)
    predictions = classes[sure.argmax(axis=1)]
    profile = build_profile(
        pd.DataFrame({"x": rng.normal(size=2000)}),
        predictions=predictions,
        probabilities=sure,
        classes=classes,
        task="classification",
    )
    assert set(profile.outputs) == {"prediction", "confidence"}
    assert profile.outputs["prediction"].kind == "categorical"
    assert set(profile.outputs["prediction"].frequencies) == {"0", "1", "2"}
    assert profile.to_dict()["classes"] == ["0", "1", "2"] and profile.task == "classification"

    def logged(proba: np.ndarray[Any, Any]) -> pd.DataFrame:
        frame = pd.DataFrame({"prediction": classes[proba.argmax(axis=1)]})
        for i in classes:
            frame[f"proba_{i}"] = proba[:, i]
        return frame

    settings = DriftSettings(min_rows=50)
    current = pd.DataFrame({"x": rng.normal(size=300)})
    same = logged(confident([20, 1, 1], 300))
    result = detect(profile, current, settings, outputs=outputs_of(same, profile))
    assert {o.column for o in result.outputs} == {"prediction", "confidence"}
    unsure = logged(confident([4, 2, 2], 300))  # the same class mix, a less certain model
    result = detect(profile, current, settings, outputs=outputs_of(unsure, profile))
    verdicts = {o.column: o.verdict for o in result.outputs}
    assert verdicts["confidence"] == "drift" and result.prediction_drift


def test_binary_probabilities_profile_the_positive_class_whatever_its_type() -> None:
    rng = np.random.default_rng(1)
    p_true = rng.beta(2, 5, 1000)
    proba = np.column_stack([1 - p_true, p_true])
    profile = build_profile(
        pd.DataFrame({"x": rng.normal(size=1000)}),
        predictions=p_true > 0.5,
        probabilities=proba,
        classes=np.array([False, True]),
        positive=np.True_,
    )
    assert set(profile.outputs) == {"prediction", "probability"} and profile.positive == "True"
    assert profile.outputs["probability"].mean == pytest.approx(p_true.mean())
    logged = pd.DataFrame(
        {"prediction": [True, False], "proba_False": [0.2, 0.9], "proba_True": [0.8, 0.1]}
    )
    outputs = outputs_of(logged, profile)
    assert outputs is not None
    assert outputs["prediction"].tolist() == ["True", "False"]
    assert outputs["probability"].tolist() == [0.8, 0.1]


def test_regression_predictions_are_profiled_as_numbers() -> None:
    profile = build_profile(
        pd.DataFrame({"x": np.arange(10.0)}), predictions=np.arange(10) * 1.5, task="regression"
    )
    assert set(profile.outputs) == {"prediction"}
    assert profile.outputs["prediction"].kind == "numeric" and profile.task == "regression"
    outputs = outputs_of(pd.DataFrame({"prediction": ["1.5", 3.0]}), profile)
    assert outputs is not None and outputs["prediction"].tolist() == [1.5, 3.0]


def test_labels_are_the_same_text_whichever_way_they_travelled() -> None:
    text = label_text(pd.Series([2, 2.0, "2", True, None, "setosa", -1.0, 2.5], dtype=object))
    assert text.isna().tolist() == [False] * 4 + [True] + [False] * 3  # missing stays missing
    assert text.dropna().tolist() == ["2", "2", "2", "True", "setosa", "-1", "2.5"]
    assert label_text(pd.Series([0.0, np.nan, 1.0])).dropna().tolist() == ["0", "1"]
