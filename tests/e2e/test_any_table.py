"""Tables other than the visa example, through the train line: the three traps a new user hit
(YAML booleans, a stratified regression split, output cut in logs), and the checks that now
fail early, with short messages, before any training cost."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from conveyor.project import Project
from tests.e2e.conftest import CONVEYOR, cli_env

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

_LOGREG = (
    "{name: logreg, estimator: sklearn.linear_model.LogisticRegression, params: {max_iter: 2000}}"
)
_TREE = "{name: tree, estimator: sklearn.tree.DecisionTreeClassifier, params: {max_depth: 3}}"


def _project(tmp_path: Path, df: pd.DataFrame, body: str) -> Path:
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    df.to_csv(tmp_path / "data" / "table.csv", index=False)
    (tmp_path / "conveyor.yaml").write_text(
        "project: t\ndata:\n  source: {type: csv, path: data/table.csv}\n" + body,
        encoding="utf-8",
    )
    return tmp_path


def _cancer(labels: tuple[str, str] = ("no", "yes")) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    df = bunch.frame.iloc[:, [*range(6), -1]].copy()
    df["target"] = np.where(df["target"] == 1, labels[1], labels[0])
    return df


def _run(project: Path, *overrides: str) -> tuple[Any, dict[str, Any], dict[str, float]]:
    with Project.load(project, overrides=overrides) as proj:
        result = proj.run()
        evaluation = (
            proj.load_artifact(result.outputs["evaluation"].digest).to_json()
            if "evaluation" in result.outputs
            else {}
        )
        return result, evaluation, dict(proj.metadata.get_run(result.run_id).metrics)


def test_positive_class_yes_is_the_class_yes_not_true(tmp_path: Path) -> None:
    """Was: PyYAML read `yes` as True, and evaluate failed after the whole training cost."""
    project = _project(
        tmp_path,
        _cancer(),
        "  target: target\n  positive_class: yes\n"
        f"training:\n  candidates:\n    - {_LOGREG}\nregistry: {{model: m}}\n",
    )
    result, evaluation, metrics = _run(project)
    assert result.ok, result.failures
    assert evaluation["positive"] == "yes"
    assert metrics["test.f1"] > 0.8


def test_positive_class_true_finds_a_boolean_target(tmp_path: Path) -> None:
    df = _cancer()
    df["target"] = df["target"] == "yes"
    project = _project(
        tmp_path,
        df,
        "  target: target\n  positive_class: true\n"
        f"training:\n  candidates:\n    - {_TREE}\nregistry: {{model: m}}\n",
    )
    result, evaluation, _ = _run(project)
    assert result.ok, result.failures
    assert evaluation["positive"] is True


def test_a_positive_class_that_is_no_class_fails_at_split_naming_the_classes(
    tmp_path: Path,
) -> None:
    project = _project(
        tmp_path,
        _cancer(),
        "  target: target\n  positive_class: malignant\n"
        "training:\n  candidates:\n    - name: logreg\n"
        "      estimator: sklearn.linear_model.LogisticRegression\n"
        "      search: {C: {low: 0.1, high: 10, log: true}}\n"
        "  tuning: {trials: 2, cv: 2}\nregistry: {model: m}\n",
    )
    result, _, _ = _run(project)
    assert not result.ok
    assert set(result.failures) == {"split"}  # before any tuning or training
    message = result.failures["split"]
    assert "positive_class 'malignant' matches none of the target's classes" in message
    assert "'no'" in message and "'yes'" in message


def test_regression_with_the_default_stratified_split_trains(tmp_path: Path) -> None:
    """Was: "cannot split on 'progression' (class counts {200: 6, 72: 6, ...})" + kilobytes."""
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    project = _project(
        tmp_path,
        df,
        "  target: progression\n"  # split.stratify is true by default
        "training:\n  task: regression\n  candidates:\n"
        "    - {name: ridge, estimator: sklearn.linear_model.Ridge}\n"
        "evaluation: {primary: r2}\nregistry: {model: m}\n",
    )
    result, evaluation, metrics = _run(project)
    assert result.ok, result.failures
    assert evaluation["task"] == "regression"
    assert metrics["test.r2"] > 0.3
    assert evaluation["baseline"]["strategy"] == "mean"
    assert abs(evaluation["baseline"]["metrics"]["r2"]) < 0.1  # the mean explains ~nothing


def test_missing_target_values_are_dropped_and_counted(tmp_path: Path) -> None:
    df = _cancer()
    df.loc[[3, 50, 70], "target"] = None
    project = _project(
        tmp_path,
        df,
        f"  target: target\ntraining:\n  candidates:\n    - {_TREE}\nregistry: {{model: m}}\n",
    )
    result, _, metrics = _run(project)
    assert result.ok, result.failures
    assert metrics["validation.dropped"] == 3
    assert metrics["validation.rows_out"] == len(df) - 3


def test_a_class_smaller_than_the_folds_fails_at_split_naming_it(tmp_path: Path) -> None:
    df = _cancer()
    df.loc[df.index[:3], "target"] = "maybe"  # 3 rows: at most 3 in training, 5 folds asked
    project = _project(
        tmp_path,
        df,
        "  target: target\ntraining:\n  candidates:\n    - name: tree\n"
        "      estimator: sklearn.tree.DecisionTreeClassifier\n"
        "      search: {max_depth: [2, 3]}\n"
        "  tuning: {trials: 2, cv: 5}\nregistry: {model: m}\n",
    )
    result, _, _ = _run(project)
    assert set(result.failures) == {"split"}
    message = result.failures["split"]
    assert "fewer than 5 rows ('maybe'" in message
    assert "training.tuning.cv" in message


def test_a_model_no_better_than_the_baseline_is_refused_with_both_scores(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=400), "y": rng.normal(size=400)})  # pure noise
    project = _project(
        tmp_path,
        df,
        "  target: y\ntraining:\n  task: regression\n  candidates:\n"
        "    - {name: tree, estimator: sklearn.tree.DecisionTreeRegressor}\n"
        "evaluation: {primary: r2}\nregistry: {model: m}\n",
    )
    result, evaluation, _ = _run(project)
    assert not result.ok and "register" in result.gated
    reason = result.failures["register"]
    model, baseline = evaluation["metrics"]["r2"], evaluation["baseline"]["metrics"]["r2"]
    assert f"r2 {model:.4g} (needs > baseline {baseline:.4g} (training mean))" in reason
    # the same run with the default gate switched off registers the model
    result, _, _ = _run(project, "evaluation.beat_baseline=false")
    assert result.ok, result.failures


def test_candidates_are_chosen_by_cross_validation_not_on_the_test_split(
    tmp_path: Path,
) -> None:
    project = _project(
        tmp_path,
        _cancer(),
        f"  target: target\ntraining:\n  candidates:\n    - {_LOGREG}\n    - {_TREE}\n"
        "registry: {model: m}\n",
    )
    result, evaluation, _ = _run(project)
    assert result.ok, result.failures
    board = evaluation["leaderboard"]
    assert evaluation["selected_by"] == "3-fold cross-validation on the training split"
    assert all(row["cv"] is not None for row in board)
    assert board[0]["cv"] == max(row["cv"] for row in board)
    assert evaluation["best"] == board[0]["candidate"]


def test_output_without_a_terminal_never_breaks_an_identifier(tmp_path: Path) -> None:
    """Was: tables hard-wrapped at 80 columns in CI logs (`prevailing_wag` / `e`)."""
    long = "prevailing_wage_of_the_occupation_in_the_area_per_year"
    df = pd.DataFrame({long: [-1.0, 2.0, 3.0], "no_of_employees_at_the_company": [1, 2, -3]})
    data = tmp_path / "d.csv"
    df.to_csv(data, index=False)
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        f"columns:\n  {long}: {{dtype: float, min: 0}}\n"
        "  no_of_employees_at_the_company: {dtype: int, min: 0}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in cli_env().items() if k != "COLUMNS"}
    proc = subprocess.run(
        [str(CONVEYOR), "data", "validate", str(data), "--schema", str(schema)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(long in line for line in lines), proc.stdout
    assert any("no_of_employees_at_the_company" in line for line in lines), proc.stdout
