"""``conveyor init --from``: the plan for a table, the config and schema it writes, the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conveyor import _yaml
from conveyor.cli.main import app
from conveyor.config import SourceConfig, load_config
from conveyor.data.schema import load_schema
from conveyor.errors import ConfigError, DataValidationError
from conveyor.scaffold import budget_for, plan_project, write_project

if TYPE_CHECKING:
    from pathlib import Path


def _table(n: int = 300, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x": x,
            "colour": rng.choice(["red", "green", "blue"], n),
            "when": pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "answer": np.where(x + rng.normal(size=n) > 0.8, "yes", "no"),
            "amount": 3 * x + rng.normal(size=n),
        }
    )


def test_budget_shrinks_as_tables_grow() -> None:
    small, medium, large, huge = (budget_for(n) for n in (300, 5_000, 50_000, 1_000_000))
    assert (small.cv, small.workers) == (5, 1)
    assert medium.cv == large.cv == huge.cv == 3
    assert small.trials >= medium.trials >= large.trials >= huge.trials
    assert small.forest and medium.forest and not large.forest
    assert small.timeout is None and medium.timeout is None
    assert large.timeout is not None and huge.timeout is not None


def test_budget_counts_classes_as_work() -> None:
    """10 classes on 1,500 rows: ten trees a round, so the budget of a 15,000-row table."""
    assert budget_for(1_500, classes=10).timeout is not None
    assert budget_for(1_500, classes=10).forest
    assert budget_for(1_500, classes=2).timeout is None


def test_binary_plan_picks_yes_as_positive_and_f1() -> None:
    plan = plan_project(_table(), target="answer")
    assert (plan.task, plan.kind, plan.primary) == ("classification", "binary", "f1")
    assert plan.positive == "yes"
    assert {r.name for r in plan.dropped} == {"id"}


def test_positive_given_as_other_case_resolves_to_the_class() -> None:
    assert plan_project(_table(), target="answer", positive="NO").positive == "no"
    with pytest.raises(DataValidationError, match="matches none"):
        plan_project(_table(), target="answer", positive="maybe")


def test_regression_plan_uses_r2() -> None:
    plan = plan_project(_table(), target="amount")
    assert (plan.task, plan.kind, plan.primary) == ("regression", "regression", "r2")
    assert plan.positive is None


def test_multiclass_with_a_rare_class_drops_it_in_the_schema(tmp_path: Path) -> None:
    df = _table()
    df.loc[:1, "colour"] = "violet"  # 2 rows: too few for 5 folds
    (tmp_path / "t.csv").write_text(df.to_csv(index=False), encoding="utf-8")
    plan, _ = write_project(tmp_path, SourceConfig(type="csv", path="t.csv"), target="colour")
    assert (plan.kind, plan.primary, plan.rare_classes) == ("multiclass", "f1_macro", ["violet"])
    schema = load_schema(tmp_path / "schema.yaml")
    allowed, severity = schema.columns["colour"].rule("allowed")
    assert (sorted(allowed), severity) == (["blue", "green", "red"], "drop")


def test_unknown_target_lists_the_columns() -> None:
    with pytest.raises(ConfigError, match=r"'nope' is not a column; columns: 'id', 'x'"):
        plan_project(_table(), target="nope")


def test_single_class_target_is_refused() -> None:
    df = _table()
    df["answer"] = "yes"
    with pytest.raises(DataValidationError, match="at least two classes"):
        plan_project(df, target="answer")


def test_written_files_load_and_say_why(tmp_path: Path) -> None:
    _table().to_csv(tmp_path / "t.csv", index=False)
    _, written = write_project(tmp_path, SourceConfig(type="csv", path="t.csv"), target="answer")
    config = load_config(tmp_path)
    assert config.data is not None and config.training is not None
    assert config.data.positive_class == "yes"  # quoted: a YAML 1.1 reader agrees
    assert config.features.drop == ["id"]
    assert config.training.tuning is not None and config.training.tuning.cv == 5
    assert [c.name for c in config.training.candidates] == ["logreg", "hgb", "forest"]
    text = (tmp_path / "conveyor.yaml").read_text(encoding="utf-8")
    assert "#   id: named like an identifier" in text
    assert 'positive_class: "yes"   # its name says so' in text
    schema = _yaml.load((tmp_path / "schema.yaml").read_text(encoding="utf-8"))
    assert schema["columns"]["when"] == {
        "dtype": "datetime",
        "format": "ISO8601",
        "nullable": False,
    }
    assert "min" not in schema["columns"]["x"]  # observed ranges are not a contract
    assert len(written) == 2


def test_cli_init_from_writes_a_project_and_reports_roles(tmp_path: Path) -> None:
    _table().to_csv(tmp_path / "t.csv", index=False)
    result = CliRunner().invoke(
        app, ["init", str(tmp_path / "p"), "--from", str(tmp_path / "t.csv"), "--target", "answer"]
    )
    assert result.exit_code == 0, result.output
    assert "binary, primary metric f1" in result.output
    assert "left out" in result.output and "datetime" in result.output
    assert (tmp_path / "p" / "Dockerfile").exists()
    config = load_config(tmp_path / "p")
    assert config.data is not None and config.data.source.path == str(tmp_path / "t.csv")


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--from", "t.csv"], 2, "--from needs --target"),
        (["--target", "y"], 2, "go with --from"),
        (["--from", "t.csv", "--target", "y", "--example", "visa"], 2, "exclude each other"),
        (["--from", "missing.csv", "--target", "y"], 1, "file not found"),
        (["--from", "postgresql://x/db", "--target", "y"], 1, "needs --table or --query"),
    ],
)
def test_cli_init_from_usage_errors(tmp_path: Path, args: list[str], code: int, text: str) -> None:
    _table().to_csv(tmp_path / "t.csv", index=False)
    result = CliRunner().invoke(app, ["init", str(tmp_path / "p"), *args], catch_exceptions=False)
    assert result.exit_code == code
    assert text in result.output


def test_cli_init_from_parquet_inside_the_project_is_relative(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "data").mkdir(parents=True)
    _table().to_parquet(project / "data" / "t.parquet")
    result = CliRunner().invoke(
        app,
        ["init", str(project), "--from", str(project / "data" / "t.parquet"), "--target", "amount"],
    )
    assert result.exit_code == 0, result.output
    config = load_config(project)
    assert config.data is not None
    assert (config.data.source.type, config.data.source.path) == ("parquet", "data/t.parquet")
    assert "regression, primary metric r2" in result.output


def test_a_wide_table_gets_fewer_importance_shuffles(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.normal(size=(200, 40)), columns=[f"x{i}" for i in range(40)])
    wide["y"] = rng.normal(size=200)
    wide.to_csv(tmp_path / "w.csv", index=False)
    write_project(tmp_path, SourceConfig(type="csv", path="w.csv"), target="y")
    assert load_config(tmp_path).evaluation.importance.repeats == 2
    _table().to_csv(tmp_path / "t.csv", index=False)
    write_project(tmp_path, SourceConfig(type="csv", path="t.csv"), target="x")
    assert load_config(tmp_path).evaluation.importance.repeats == 5
