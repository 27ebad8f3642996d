"""``conveyor data validate|infer|versions`` driven through the Typer app, as a user would."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.data.schema import parse_schema
from conveyor.examples.visa.generate import write_csv
from conveyor.project import Project
from tests._visa import shrink_visa_config
from tests.e2e.conftest import RUNNER_ENV

if TYPE_CHECKING:
    from collections.abc import Iterator

    from click.testing import Result

ROWS = 1500
ENV = RUNNER_ENV
_LEAKY = [k for k, v in ENV.items() if v is None]


def invoke(*args: str | Path) -> Result:
    return CliRunner(env=ENV).invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LEAKY:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def visa_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    text = resources.files("conveyor.examples.visa").joinpath("schema.yaml").read_text("utf-8")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def visa_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 generated rows: two negative employee counts (drop) and one odd wage unit (warn)."""
    return write_csv(tmp_path_factory.mktemp("data") / "visa.csv", n_rows=ROWS)


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not a project."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- validate -----------------------------------------------------------------------------------


def test_validate_clean_file_exits_0_with_counts(visa_csv: Path, visa_schema: Path) -> None:
    result = invoke("data", "validate", visa_csv, "--schema", visa_schema)
    assert result.exit_code == 0, result.output
    assert f"validation of {visa_csv}: succeeded" in result.stdout
    assert f"rows in {ROWS}, out {ROWS - 2} (dropped 2, fixed 0, warnings 1)" in result.stdout
    assert "no_of_employees" in result.stdout
    assert "min >= 1" in result.stdout
    assert "hourly_wage_plausible" in result.stdout


def test_validate_json(visa_csv: Path, visa_schema: Path) -> None:
    result = invoke("data", "validate", visa_csv, "--schema", visa_schema, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert (report["rows_in"], report["rows_out"]) == (ROWS, ROWS - 2)
    assert (report["dropped"], report["fixed"], report["warnings"]) == (2, 0, 1)
    checks = {(f["column"], f["check"], f["severity"]) for f in report["failures"]}
    assert checks == {
        ("no_of_employees", "min >= 1", "drop"),
        (None, "hourly_wage_plausible: prevailing_wage <= 400", "warn"),
    }
    assert (
        report["schema_hash"]
        == parse_schema(yaml.safe_load(visa_schema.read_text("utf-8"))).digest()
    )


def test_validate_bad_file_exits_1_naming_column_and_check(
    visa_csv: Path, visa_schema: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(visa_csv)
    frame.loc[[4, 9], "yr_of_estab"] = 1700
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    result = invoke("data", "validate", bad, "--schema", visa_schema)
    assert result.exit_code == 1
    assert "failed" in result.stdout
    assert "yr_of_estab" in result.stdout
    assert "min >= 1800" in result.stdout
    assert "5, 10" in result.stdout  # 1-based data rows
    report = json.loads(invoke("data", "validate", bad, "--schema", visa_schema, "--json").stdout)
    assert report["passed"] is False
    [error] = [f for f in report["failures"] if f["severity"] == "error"]
    assert (error["column"], error["check"], error["rows"], error["values"]) == (
        "yr_of_estab",
        "min >= 1800",
        [5, 10],
        [1700, 1700],
    )


def test_validate_without_schema_outside_a_project(visa_csv: Path, outside: Path) -> None:
    result = invoke("data", "validate", visa_csv)
    assert result.exit_code == 1
    assert "no schema" in result.stderr
    assert result.stdout == ""


def test_validate_bad_schema_exits_1_naming_the_key(
    visa_csv: Path, tmp_path: Path, outside: Path
) -> None:
    schema = tmp_path / "broken.yaml"
    schema.write_text("columns:\n  case_id: {dtype: text}\n", encoding="utf-8")
    result = invoke("data", "validate", visa_csv, "--schema", schema)
    assert result.exit_code == 1
    assert "columns.case_id.dtype" in result.stderr


def test_validate_uses_the_project_schema(visa_csv: Path, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    assert invoke("init", project, "--example", "visa").exit_code == 0
    result = invoke("data", "validate", visa_csv, "-p", project, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dropped"] == 2


# --- infer --------------------------------------------------------------------------------------


def test_infer_prints_yaml_that_parse_schema_accepts(visa_csv: Path, tmp_path: Path) -> None:
    result = invoke("data", "infer", visa_csv)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# inferred by `conveyor data infer visa.csv` from {ROWS}")
    raw = yaml.safe_load(result.stdout)
    schema = parse_schema(raw, source="inferred")
    assert schema.table.key_columns == ["case_id"]
    assert schema.columns["no_of_employees"].dtype == "int"
    assert schema.columns["case_status"].allowed == ["Certified", "Denied"]
    # The inferred schema accepts the file it came from.
    inferred = tmp_path / "inferred.yaml"
    inferred.write_text(result.stdout, encoding="utf-8")
    check = invoke("data", "validate", visa_csv, "--schema", inferred, "--json")
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout)["failures"] == []


def test_infer_max_categories(visa_csv: Path) -> None:
    raw = yaml.safe_load(invoke("data", "infer", visa_csv, "--max-categories", "2").stdout)
    assert raw["columns"]["case_status"]["dtype"] == "category"
    assert raw["columns"]["continent"]["dtype"] == "string"


# --- versions -----------------------------------------------------------------------------------


def _flip_one_cell(csv: Path) -> None:
    """Change the target of the first data row (one cell, same shape)."""
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    head, last = lines[1].rstrip("\n").rsplit(",", 1)
    flipped = {"Certified": "Denied", "Denied": "Certified"}[last]
    lines[1] = f"{head},{flipped}\n"
    csv.write_text("".join(lines), encoding="utf-8")


def _versions(project: Path) -> list[dict[str, Any]]:
    result = invoke("data", "versions", "-p", project, "--json")
    assert result.exit_code == 0, result.output
    versions: list[dict[str, Any]] = json.loads(result.stdout)
    return versions


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A visa project of 1,500 rows: trained once, then again after one cell changed."""
    with pytest.MonkeyPatch.context() as mp:
        for name in _LEAKY:
            mp.delenv(name, raising=False)
        project = tmp_path_factory.mktemp("versions") / "visa"
        assert invoke("init", project, "--example", "visa").exit_code == 0
        write_csv(project / "data" / "visa.csv", n_rows=ROWS)
        shrink_visa_config(project)
        out: dict[str, Any] = {"project": project}
        with Project.load(project) as proj:
            out["first_run"] = proj.run()
        out["after_first"] = _versions(project)
        out["table"] = invoke("data", "versions", "-p", project).stdout
        _flip_one_cell(project / "data" / "visa.csv")
        with Project.load(project) as proj:
            out["second_run"] = proj.run()
        out["after_second"] = _versions(project)
        yield out


def test_versions_after_one_run(history: dict[str, Any]) -> None:
    assert history["first_run"].status == "succeeded"
    [version] = history["after_first"]
    assert version["rows"] == ROWS
    assert version["columns"] == 12
    assert version["models"] == ["visa-approval:1"]
    assert len(version["fingerprint"]) == 64
    assert version["source"].endswith("visa.csv")
    assert version["run_id"]
    assert version["schema_hash"]


def test_versions_table(history: dict[str, Any]) -> None:
    [version] = history["after_first"]
    table = history["table"]
    assert version["fingerprint"][:12] in table
    assert "visa-approval:1" in table
    assert str(ROWS) in table


def test_changed_cell_adds_a_second_version(history: dict[str, Any]) -> None:
    assert history["second_run"].status == "succeeded"
    newest, oldest = history["after_second"]
    assert oldest == history["after_first"][0]
    assert newest["fingerprint"] != oldest["fingerprint"]
    assert newest["rows"] == ROWS
    assert newest["schema_hash"] == oldest["schema_hash"]
    assert newest["run_id"] != oldest["run_id"]
    assert newest["models"] == ["visa-approval:2"]


def test_versions_of_a_fresh_project(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    assert invoke("init", project).exit_code == 0
    assert _versions(project) == []
    assert "no dataset versions yet" in invoke("data", "versions", "-p", project).stdout
