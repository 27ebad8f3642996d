"""The bad-input corpus (tests/data/bad/): each malformed file fails with a message naming it.

For every file: ``conveyor data validate`` exits 1 and names the file and the problem, and a
train run stops at the expected step (ingest, validate or split), skips everything after it and
registers nothing. A few files also go through the real ``conveyor run``. See bad/README.md.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
import yaml

from conveyor.project import Project
from conveyor.runner import RunResult
from conveyor.store.metadata import RunStatus, StepStatus
from tests.e2e.conftest import conveyor, make_visa_project

BAD = Path(__file__).parent / "bad"
VISA = resources.files("conveyor.examples.visa")
SCHEMA = Path(str(VISA / "schema.yaml"))
SOURCE_LINE = "source: {type: csv, path: data/visa.csv}"
TRAIN_STEPS = ["ingest", "validate", "split"]  # where a bad input must stop the line
NOT_DATA = {"README.md", "schema.yaml", "conveyor.yaml"}


@dataclass(frozen=True)
class Bad:
    """One corpus file and what conveyor must say about it.

    A reader failure (step ``ingest``) is described by ``fragments``. A schema failure is the
    first failing check: ``column`` (None for a table check), ``check``, and optionally the first
    failing ``row`` and the ``value`` as quoted in the message (``repr``). ``run_fragments``
    replace the column/check expectations for the run when its message differs from
    ``data validate``'s. ``run_bug`` / ``cli_bug`` mark a known defect (strict xfail).
    """

    file: str
    step: str
    fragments: tuple[str, ...] = ()
    column: str | None = None
    check: str | None = None
    row: int | None = None
    value: str | None = None
    run_fragments: tuple[str, ...] = ()
    schema_ok: bool = False  # the schema accepts it: `data validate` passes, the run must not
    run_bug: str | None = None
    cli_bug: str | None = None


CASES = [
    Bad("empty.csv", "ingest", ("is empty (0 bytes)",)),
    Bad("header_only.csv", "validate", check="min_rows 100"),
    Bad(
        "missing_required_column.csv",
        "validate",
        column="yr_of_estab",
        check="required column is missing",
    ),
    Bad("extra_column.csv", "validate", column="notes", check="column not in schema"),
    Bad(
        "wrong_type_int.csv",
        "validate",
        column="yr_of_estab",
        check="dtype int",
        row=7,
        value="'nineteen-ninety'",
    ),
    Bad(
        "wrong_type_float.csv",
        "validate",
        column="prevailing_wage",
        check="dtype float",
        row=7,
        value="'$95,000'",
    ),
    Bad(
        "non_utf8.csv",
        "ingest",
        ("not valid utf-8 text: byte 0xe9 at offset 791", "data.source.options.encoding"),
    ),
    Bad(
        "wrong_delimiter.csv",
        "ingest",
        ("parsed into a single column; the header contains ';'", 'sep: ";"'),
    ),
    Bad(
        "truncated_last_line.csv",
        "validate",
        column="region_of_employment",
        check="allowed values",
        row=120,
        value="'Wes'",
    ),
    Bad("nan_in_target.csv", "validate", column="case_status", check="not null", row=5),
    Bad(
        "unknown_category.csv",
        "validate",
        column="continent",
        check="allowed values",
        row=12,
        value="'Atlantis'",
    ),
    Bad(
        "duplicate_primary_key.csv",
        "validate",
        column="case_id",
        check="unique",
        row=3,
        value="'EZYV03'",
    ),
    Bad(
        "out_of_range_year.csv",
        "validate",
        column="yr_of_estab",
        check="max <= 2016",
        row=15,
        value="2090",
    ),
    Bad(
        "negative_wage.csv",
        "validate",
        column="prevailing_wage",
        check="min >= 0",
        row=21,
        value="-1250.0",
    ),
    Bad(
        "huge_number.csv",
        "validate",
        column="yr_of_estab",
        check="dtype int",
        row=18,
        value="99999999999999999999999",
    ),
    Bad(
        "huge_float.csv",
        "validate",
        column="prevailing_wage",
        check="dtype float",
        row=18,
        value="'inf'",
    ),
    Bad(
        "infinite_wage.csv",
        "validate",
        column="prevailing_wage",
        check="dtype float",
        row=25,
        value="'inf'",
    ),
    Bad(
        "bad_case_id_regex.csv",
        "validate",
        column="case_id",
        check=r"regex ^EZYV\d+$",
        row=11,
        value="'CASE-0011'",
    ),
    Bad("binary_garbage.csv", "ingest", ("cannot read as csv: it looks like binary data",)),
    Bad("not_parquet.parquet", "ingest", ("cannot read as parquet", "set type: csv?")),
    Bad("too_few_rows.csv", "validate", check="min_rows 100"),
    Bad(
        "only_one_class.csv",
        "split",
        run_fragments=("case_status", "'Certified'"),
        schema_ok=True,
    ),
    Bad(
        "whitespace_in_category.csv",
        "validate",
        column="continent",
        check="allowed values",
        row=4,
        value="' Asia'",
    ),
    Bad(
        "fraction_in_int.csv",
        "validate",
        column="yr_of_estab",
        check="dtype int",
        row=6,
        value="1997.5",
    ),
    Bad("missing_value.csv", "validate", column="prevailing_wage", check="not null", row=33),
    Bad(
        "ragged_row.csv", "ingest", ("cannot read as csv", "Expected 12 fields in line 52, saw 13")
    ),
    Bad(
        "unclosed_quote.csv",
        "ingest",
        ("cannot read as csv", "EOF inside string starting at row 61"),
    ),
    Bad("utf16.csv", "ingest", ("UTF-16 text (set data.source.options.encoding: utf-16)",)),
    Bad("gzipped.csv", "ingest", ("gzip data (name it .csv.gz",)),
    Bad(
        "missing_target.parquet",
        "validate",
        column="case_status",
        check="required column is missing",
        run_fragments=("target column 'case_status' (data.target) is missing",),
    ),
    Bad(
        "wrong_type.parquet",
        "validate",
        column="yr_of_estab",
        check="dtype int",
        row=9,
        value="'unknown'",
    ),
]
BY_NAME = {case.file: case for case in CASES}


def _params(bug: str) -> list[object]:
    """``CASES`` as pytest params, strict-xfail where the ``bug`` field says so."""
    out = []
    for case in CASES:
        reason = getattr(case, bug)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(case, id=case.file, marks=marks))
    return out


def _run_expectations(case: Bad) -> list[str]:
    """Substrings the failing step's message must contain."""
    if case.run_fragments:
        return list(case.run_fragments)
    if case.check is None:
        return list(case.fragments)
    where = f"column {case.column!r} " if case.column else ""
    expected = [f"{where}check '{case.check}'"]
    if case.row is not None:
        expected.append(f"(rows {case.row}")
    if case.value is not None:
        expected.append(case.value)
    return expected


def _report_row(case: Bad) -> re.Pattern[str]:
    """The failing check's row in the table ``conveyor data validate`` prints."""
    pattern = rf"error\s+{re.escape(case.column or '(table)')}\s+{re.escape(str(case.check))}\s"
    if case.row is not None:
        pattern += rf"\s*\d+\s+{case.row}\b[^\n]*"
    if case.value is not None:
        pattern += re.escape(case.value)
    return re.compile(pattern)


def _project(directory: Path, data_file: Path) -> Path:
    """The visa example project (its conveyor.yaml and schema.yaml) reading ``data_file``."""
    (directory / "data").mkdir(parents=True)
    shutil.copy(data_file, directory / "data" / data_file.name)
    (directory / "schema.yaml").write_text(SCHEMA.read_text(encoding="utf-8"), encoding="utf-8")
    config = (VISA / "conveyor.yaml").read_text(encoding="utf-8")
    assert SOURCE_LINE in config and "max_iter: 200" in config, "the visa example changed"
    kind = "parquet" if data_file.suffix == ".parquet" else "csv"
    config = config.replace(SOURCE_LINE, f"source: {{type: {kind}, path: data/{data_file.name}}}")
    config = config.replace("max_iter: 200", "max_iter: 30")
    (directory / "conveyor.yaml").write_text(config, encoding="utf-8")
    return directory


def _failed_run(directory: Path) -> tuple[Project, RunResult]:
    """Load the project and run its train line (the caller closes the project)."""
    proj = Project.load(directory)
    return proj, proj.run()


# --- the corpus itself ----------------------------------------------------------------------


def test_corpus_matches_the_expectations_and_the_readme():
    files = sorted(p.name for p in BAD.iterdir() if p.name not in NOT_DATA)
    assert files == sorted(BY_NAME), "every corpus file needs exactly one expectation"
    assert len(files) >= 22
    assert len(CASES) == len(BY_NAME), "duplicated file in CASES"
    readme = (BAD / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE)
    assert sorted(listed) == files, "README.md must list every corpus file once"
    assert {case.step for case in CASES} <= {"ingest", "validate", "split"}
    assert (BAD / "empty.csv").stat().st_size == 0


# --- a: conveyor data validate FILE --schema visa/schema.yaml ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", _params("cli_bug"))
def test_data_validate_names_the_file_and_the_problem(case: Bad, tmp_path: Path):
    file = BAD / case.file
    proc = conveyor("data", "validate", file, "--schema", SCHEMA, cwd=tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    if case.schema_ok:  # not a schema problem: data validate has no target or task to judge
        assert proc.returncode == 0, output
        assert "succeeded" in proc.stdout
        return
    assert proc.returncode == 1, output
    assert case.file in output
    if case.check is None:  # the reader's message: "error: /path/FILE: problem" on stderr
        assert proc.stderr.startswith("error: ")
        for fragment in case.fragments:
            assert fragment in proc.stderr
    else:
        assert "failed" in proc.stdout
        assert _report_row(case).search(proc.stdout), proc.stdout


# --- b: a train run on the file, in-process ---------------------------------------------------


@pytest.mark.parametrize("case", _params("run_bug"))
def test_train_run_stops_at_the_expected_step_and_registers_nothing(case: Bad, tmp_path: Path):
    proj, result = _failed_run(_project(tmp_path / "proj", BAD / case.file))
    with proj:
        assert result.status is RunStatus.FAILED
        assert list(result.failures) == [case.step]
        failed_at = TRAIN_STEPS.index(case.step)
        for name in TRAIN_STEPS[:failed_at]:
            assert result.steps[name] is StepStatus.SUCCEEDED, name
        assert result.steps[case.step] is StepStatus.FAILED
        later = [n for n in result.steps if n not in TRAIN_STEPS[: failed_at + 1]]
        assert later, "the train line has steps after the data ones"
        for name in later:
            assert result.steps[name] is StepStatus.SKIPPED, name
        message = result.failures[case.step]
        assert "Traceback" not in message
        assert case.file in message
        for fragment in _run_expectations(case):
            assert fragment in message, message
        record = proj.metadata.get_run(result.run_id)
        assert record.status is RunStatus.FAILED
        assert proj.metadata.list_model_versions() == []
        if case.step == "ingest":  # nothing was read, so no dataset version either
            assert proj.metadata.list_datasets() == []


# --- known vague messages ---------------------------------------------------------------------

VAGUE = [
    pytest.param(
        "header_only.csv",
        "0 rows",
        id="header_only-says-0-rows",
    ),
    pytest.param(
        "too_few_rows.csv",
        "50 rows",
        id="too_few_rows-says-50-rows",
    ),
]


@pytest.mark.parametrize(("file", "fragment"), VAGUE)
def test_table_size_messages_say_how_many_rows(file: str, fragment: str, tmp_path: Path):
    proj, result = _failed_run(_project(tmp_path / "proj", BAD / file))
    with proj:
        assert fragment in result.failures["validate"]


def test_missing_values_are_not_quoted_as_the_text_nan(tmp_path: Path):
    proj, result = _failed_run(_project(tmp_path / "proj", BAD / "nan_in_target.csv"))
    with proj:
        message = result.failures["validate"]
        assert "(rows 5, 40, 77;" in message
        assert "'nan'" not in message


# --- c: the real CLI, for a few representative files ------------------------------------------

CLI_RUN = ["empty.csv", "non_utf8.csv", "unknown_category.csv", "wrong_type.parquet"]


@pytest.mark.slow
@pytest.mark.parametrize("file", CLI_RUN)
def test_conveyor_run_fails_cleanly_and_registers_nothing(file: str, tmp_path: Path):
    case = BY_NAME[file]
    project = make_visa_project(tmp_path / "visa", n_rows=200)
    shutil.copy(BAD / file, project / "data" / file)
    config = project / "conveyor.yaml"
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert settings["data"]["source"] == {"type": "csv", "path": "data/visa.csv"}
    kind = "parquet" if file.endswith(".parquet") else "csv"
    settings["data"]["source"] = {"type": kind, "path": f"data/{file}"}
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")

    proc = conveyor("run", "-p", project, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"step {case.step} failed:" in proc.stderr
    assert file in proc.stderr
    for fragment in _run_expectations(case):
        assert fragment in proc.stderr, proc.stderr
    with Project.load(project) as proj:
        runs = proj.metadata.list_runs()
        assert [str(r.status) for r in runs] == ["failed"]
        assert proj.metadata.list_model_versions() == []
