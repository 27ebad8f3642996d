"""schema.yaml: loading, errors naming file and key path, Rule form, digest, inference."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.data.schema import Rule, Schema, infer_schema, load_schema, parse_schema
from conveyor.data.validation import validate
from conveyor.errors import ConfigError
from conveyor.examples.visa.generate import COLUMNS, generate

VISA_SCHEMA = Path(str(resources.files("conveyor.examples.visa").joinpath("schema.yaml")))


def _config_error(raw: object, source: str = "my/schema.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_schema(raw, source=source)
    return str(info.value)


# --- loading ------------------------------------------------------------------------------------


def test_visa_schema_loads_with_every_column() -> None:
    schema = load_schema(VISA_SCHEMA)
    assert list(schema.columns) == list(COLUMNS)
    assert schema.required_columns == list(COLUMNS)
    assert schema.table.key_columns == ["case_id"]
    assert schema.table.min_rows == 100
    assert schema.table.extra_columns == "error"
    assert schema.columns["case_status"].role == "target"
    assert schema.columns["no_of_employees"].rule("min") == (1, "drop")
    assert schema.columns["yr_of_estab"].rule("max") == (2016, "error")
    assert set(schema.checks) == {"hourly_wage_plausible"}
    check = schema.checks["hourly_wage_plausible"]
    assert (check.when, check.require, check.severity) == (
        "unit_of_wage == 'Hour'",
        "prevailing_wage <= 400",
        "warn",
    )


def test_required_columns_can_be_a_subset() -> None:
    schema = parse_schema(
        {"columns": {"a": {}, "b": {}, "c": {}}, "table": {"required": ["a", "c"]}}
    )
    assert schema.required_columns == ["a", "c"]


@pytest.mark.parametrize(("key", "expected"), [(None, []), ("a", ["a"]), (["a", "b"], ["a", "b"])])
def test_key_columns_is_always_a_list(key: object, expected: list[str]) -> None:
    schema = parse_schema({"columns": {"a": {}, "b": {}}, "table": {"primary_key": key}})
    assert schema.table.key_columns == expected


def test_an_empty_file_is_an_empty_schema(tmp_path: Path) -> None:
    file = tmp_path / "schema.yaml"
    file.write_text("", encoding="utf-8")
    assert load_schema(file) == Schema()


def test_column_defaults() -> None:
    spec = parse_schema({"columns": {"a": {}}}).columns["a"]
    assert spec.dtype == "string"
    assert spec.rule("nullable") == (True, "error")
    assert spec.rule("unique") == (False, "error")
    assert spec.rule("min") == (None, "error")


# --- errors name the file and key path ----------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    file = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: schema file not found"):
        load_schema(file)


def test_bad_yaml_is_named(tmp_path: Path) -> None:
    file = tmp_path / "schema.yaml"
    file.write_text("columns: {a: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"schema\.yaml: cannot read schema"):
        load_schema(file)


def test_unknown_key_names_file_and_key_path(tmp_path: Path) -> None:
    file = tmp_path / "schema.yaml"
    file.write_text("columns:\n  x: {dtype: int, maxx: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_schema(file)
    message = str(info.value)
    assert str(file) in message
    assert "columns.x.maxx" in message
    assert "unknown key" in message


def test_wrong_dtype_name_lists_the_choices() -> None:
    message = _config_error({"columns": {"x": {"dtype": "integer"}}})
    assert message.startswith("my/schema.yaml: columns.x.dtype:")
    for name in ("string", "category", "int", "float", "bool", "datetime"):
        assert name in message


def test_top_level_must_be_a_mapping() -> None:
    assert "expected a mapping" in _config_error(["columns"])


@pytest.mark.parametrize("check", ["allowed", "regex", "unique", "nullable"])
def test_fix_is_rejected_on_checks_that_cannot_clip(check: str) -> None:
    value = {"allowed": ["a"], "regex": "^a$", "unique": True, "nullable": False}[check]
    message = _config_error({"columns": {"x": {check: {"value": value, "severity": "fix"}}}})
    assert "columns.x" in message
    assert f"{check}: severity 'fix' only applies to min/max" in message


def test_fix_is_rejected_on_row_checks() -> None:
    message = _config_error({"checks": {"c": {"require": "a > 1", "severity": "fix"}}})
    assert "checks.c" in message
    assert "row checks" in message


def test_unknown_severity_is_rejected() -> None:
    message = _config_error({"columns": {"x": {"min": {"value": 1, "severity": "ignore"}}}})
    assert "columns.x.min" in message


@pytest.mark.parametrize("key", ["case", ["id", "case"]])
def test_primary_key_must_be_a_declared_column(key: object) -> None:
    message = _config_error({"columns": {"id": {}}, "table": {"primary_key": key}})
    assert "my/schema.yaml" in message
    assert "column 'case' is not declared under columns" in message


def test_required_column_must_be_declared() -> None:
    message = _config_error({"columns": {"a": {}}, "table": {"required": ["a", "zz"]}})
    assert "'zz'" in message


def test_negative_min_rows_is_rejected() -> None:
    assert "table.min_rows" in _config_error({"table": {"min_rows": -1}})


def test_column_level_fix_is_accepted_when_only_min_max_are_set() -> None:
    schema = parse_schema({"columns": {"a": {"dtype": "int", "min": 0, "severity": "fix"}}})
    assert schema.columns["a"].rule("min") == (0, "fix")


@pytest.mark.parametrize(
    ("check", "value"), [("min", "one"), ("allowed", 5), ("nullable", "sometimes")]
)
def test_rule_value_is_type_checked(check: str, value: object) -> None:
    message = _config_error({"columns": {"x": {"dtype": "int", check: {"value": value}}}})
    assert f"columns.x: {check}.value: expected" in message


def test_bad_regex_names_the_file_and_field(tmp_path: Path) -> None:
    file = tmp_path / "schema.yaml"
    file.write_text('columns:\n  code: {regex: "("}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_schema(file)
    assert str(info.value) == (
        f"{file}: columns.code.regex: invalid regular expression '(': "
        "missing ), unterminated subpattern at position 0"
    )


@pytest.mark.parametrize("regex", ["[a-", "a{2,1}", "(?P<x>a)(?P<x>b)", "*a"])
def test_bad_regex_is_refused_in_the_rule_form_too(regex: str) -> None:
    for value in (regex, {"value": regex, "severity": "warn"}):
        message = _config_error({"columns": {"code": {"regex": value}}})
        assert message.startswith(
            f"my/schema.yaml: columns.code.regex: invalid regular expression {regex!r}: "
        )
        assert "\n" not in message


@pytest.mark.parametrize(
    ("fmt", "fragment"),
    [
        ("%Y-%Q", "invalid datetime format '%Y-%Q': 'Q' is a bad directive in format '%Y-%Q'"),
        ("%Y %", "invalid datetime format '%Y %': stray % in format '%Y %'"),
        ("%", "datetime format '%' has no % directive"),
        ("%G-%V", "invalid datetime format '%G-%V': ISO year directive '%G' must be used"),
        ("iso8601", "datetime format 'iso8601' has no % directive: write a strftime pattern"),
        ("YYYY-MM-DD", "has no % directive"),
        ("100%%", "has no % directive"),
        ("", "has no % directive"),
    ],
)
def test_bad_datetime_format_names_the_field(fmt: str, fragment: str) -> None:
    message = _config_error({"columns": {"when": {"dtype": "datetime", "format": fmt}}})
    assert message.startswith("my/schema.yaml: columns.when.format: ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "fmt", ["ISO8601", "mixed", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S.%f", "%Y %z", "%d %b %Y", "%%%Y"]
)
def test_good_datetime_formats_load_and_parse(fmt: str) -> None:
    schema = parse_schema({"columns": {"when": {"dtype": "datetime", "format": fmt}}})
    assert schema.columns["when"].format == fmt


def test_datetime_format_is_used_to_parse() -> None:
    schema = parse_schema({"columns": {"when": {"dtype": "datetime", "format": "%d/%m/%Y"}}})
    clean, report = validate(
        pd.DataFrame({"when": ["03/02/2001", "31/12/1999"]}), schema, source="x"
    )
    assert report.passed
    assert clean["when"].dt.month.tolist() == [2, 12]


# --- row checks are an expression language, checked at load -------------------------------------


def test_row_check_expression_is_checked_at_load_naming_the_key(tmp_path: Path) -> None:
    file = tmp_path / "schema.yaml"
    file.write_text(
        "checks:\n  c: {when: \"unit.upper() == 'HOUR'\", require: 'wage < 9'}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_schema(file)
    assert str(info.value) == (
        f"{file}: checks.c.when: calling is not allowed in a row check: 'unit.upper()'"
    )


@pytest.mark.parametrize("key", ["require", "when"])
def test_row_check_syntax_error_names_the_key(key: str) -> None:
    check = {"require": "a > 1", key: "a >"}
    message = _config_error({"checks": {"c": check}})
    assert message == f"my/schema.yaml: checks.c.{key}: not a valid expression: invalid syntax"


def test_row_check_on_an_undeclared_column_is_refused_at_load() -> None:
    message = _config_error(
        {
            "columns": {"unit": {}, "wage": {}},
            "checks": {"c": {"when": "unitt == 1", "require": "wage > 0"}},
        }
    )
    assert message == (
        "my/schema.yaml: (top level): checks.c.when: unknown column 'unitt' "
        "(did you mean 'unit'?); the columns are 'unit', 'wage'"
    )


@pytest.mark.parametrize(
    "sections",
    [
        {},  # no columns declared: checked against the data
        {"columns": {"a": {}}, "table": {"extra_columns": "allow"}},  # may read extra columns
    ],
)
def test_row_check_columns_are_left_to_validation_when_not_all_declared(
    sections: dict[str, object],
) -> None:
    schema = parse_schema({**sections, "checks": {"c": {"require": "b > 1"}}})
    assert schema.checks["c"].require == "b > 1"


def test_row_check_expression_that_is_too_long_is_refused() -> None:
    message = _config_error({"checks": {"c": {"require": "a > 1 and " * 200 + "True"}}})
    assert message.startswith(
        "my/schema.yaml: checks.c.require: the expression has 2,004 characters"
    )


def test_row_check_expression_must_be_text() -> None:
    assert "checks.c.require" in _config_error({"checks": {"c": {"require": 5}}})


# --- Rule form ----------------------------------------------------------------------------------


def test_rule_form_carries_its_own_severity() -> None:
    spec = parse_schema(
        {"columns": {"n": {"dtype": "int", "min": {"value": 1, "severity": "drop"}, "max": 9}}}
    ).columns["n"]
    assert spec.min == Rule(value=1, severity="drop")
    assert spec.rule("min") == (1, "drop")
    assert spec.rule("max") == (9, "error")


def test_rule_without_severity_falls_back_to_the_column_severity() -> None:
    spec = parse_schema(
        {"columns": {"n": {"dtype": "int", "min": {"value": 1}, "severity": "warn"}}}
    ).columns["n"]
    assert spec.rule("min") == (1, "warn")
    assert spec.rule("nullable") == (True, "warn")


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("error", "error"), ("warn", "warn"), ("drop", "drop")],
)
def test_type_severity_follows_the_column(severity: str, expected: str) -> None:
    spec = parse_schema({"columns": {"n": {"dtype": "int", "severity": severity}}}).columns["n"]
    assert spec.type_severity == expected


# --- digest -------------------------------------------------------------------------------------


def test_digest_is_stable() -> None:
    first = load_schema(VISA_SCHEMA).digest()
    assert first == load_schema(VISA_SCHEMA).digest()
    assert len(first) == 64
    int(first, 16)


def test_digest_ignores_key_order() -> None:
    a = parse_schema({"columns": {"n": {"dtype": "int", "min": 1, "max": 5}}})
    b = parse_schema({"columns": {"n": {"max": 5, "min": 1, "dtype": "int"}}})
    assert a.digest() == b.digest()


@pytest.mark.parametrize(
    "change",
    [
        {"columns": {"n": {"dtype": "int", "min": 2}}},
        {"columns": {"n": {"dtype": "float", "min": 1}}},
        {"columns": {"n": {"dtype": "int", "min": {"value": 1, "severity": "drop"}}}},
        {"columns": {"n": {"dtype": "int", "min": 1}}, "table": {"min_rows": 5}},
        {"columns": {"n": {"dtype": "int", "min": 1}}, "checks": {"c": {"require": "n < 3"}}},
    ],
)
def test_digest_changes_when_a_check_changes(change: dict[str, object]) -> None:
    base = parse_schema({"columns": {"n": {"dtype": "int", "min": 1}}})
    assert parse_schema(change).digest() != base.digest()


# --- inference ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def visa_sample() -> pd.DataFrame:
    """300 visa rows read back from CSV (as a user's file would be), one wage missing."""
    frame = generate(300, seed=1)
    frame.loc[3, "prevailing_wage"] = np.nan
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    buffer.seek(0)
    return pd.read_csv(buffer)


def test_infer_schema_on_visa_types(visa_sample: pd.DataFrame) -> None:
    columns = infer_schema(visa_sample)["columns"]
    assert list(columns) == list(COLUMNS)
    assert columns["no_of_employees"]["dtype"] == "int"
    assert columns["yr_of_estab"]["dtype"] == "int"
    assert columns["prevailing_wage"]["dtype"] == "float"
    assert columns["case_id"]["dtype"] == "string"
    for name in ("continent", "unit_of_wage", "case_status", "has_job_experience"):
        assert columns[name]["dtype"] == "category", name
    assert columns["case_status"]["allowed"] == ["Certified", "Denied"]
    assert columns["has_job_experience"]["allowed"] == ["N", "Y"]


def test_infer_schema_on_visa_ranges(visa_sample: pd.DataFrame) -> None:
    columns = infer_schema(visa_sample)["columns"]
    for name in ("no_of_employees", "yr_of_estab", "prevailing_wage"):
        values = visa_sample[name].dropna()
        assert columns[name]["min"] == values.min()
        assert columns[name]["max"] == values.max()
        # Plain Python numbers, so the YAML stays readable.
        assert type(columns[name]["min"]) in (int, float)
    assert "min" not in columns["case_id"]


def test_infer_schema_on_visa_unique_key_and_nullability(visa_sample: pd.DataFrame) -> None:
    spec = infer_schema(visa_sample)
    columns = spec["columns"]
    assert columns["case_id"]["unique"] is True
    assert spec["table"]["primary_key"] == "case_id"
    assert "unique" not in columns["continent"]
    assert columns["prevailing_wage"]["nullable"] is True
    assert columns["no_of_employees"]["nullable"] is False
    assert columns["case_id"]["nullable"] is False


def test_inferred_schema_validates_its_own_sample(visa_sample: pd.DataFrame) -> None:
    text = yaml.safe_dump(infer_schema(visa_sample), sort_keys=False)
    schema = parse_schema(yaml.safe_load(text), source="inferred.yaml")
    clean, report = validate(visa_sample, schema, source="sample.csv")
    assert report.failures == []
    assert report.passed
    assert report.rows_out == len(visa_sample) == len(clean)


def test_infer_schema_other_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "ratio": [1.5, 2.5, 2.5],
            "count": [1.0, None, 3.0],  # whole numbers with a gap: read as float, still int
            "flag": [True, False, True],
            "when": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]),
            "text": ["a", "b", "c"],
        }
    )
    columns = infer_schema(frame, max_categories=2)["columns"]
    assert columns["ratio"] == {"dtype": "float", "nullable": False, "min": 1.5, "max": 2.5}
    assert columns["count"]["dtype"] == "int"
    assert columns["count"]["nullable"] is True
    assert "unique" not in columns["count"]  # a missing value is not a unique key
    assert columns["flag"]["dtype"] == "bool"
    assert columns["when"]["dtype"] == "datetime"
    assert columns["text"]["dtype"] == "string"  # 3 values > max_categories
    assert columns["text"]["unique"] is True


def test_infer_schema_no_key_without_an_id_column() -> None:
    spec = infer_schema(pd.DataFrame({"name": ["a", "b"], "value": [1, 2]}))
    assert "primary_key" not in spec["table"]
    parse_schema(spec)


_CELLS = {
    "whole": st.one_of(st.none(), st.integers(-(2**40), 2**40)),
    "real": st.one_of(
        st.none(), st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, width=64)
    ),
    "text": st.one_of(st.none(), st.text(alphabet="abXY 1-", min_size=1, max_size=4)),
}


@settings(max_examples=40, deadline=None)
@given(
    data=st.integers(1, 10).flatmap(
        lambda n: st.fixed_dictionaries(
            {name: st.lists(cell, min_size=n, max_size=n) for name, cell in _CELLS.items()}
        )
    ),
    via_csv=st.booleans(),
)
def test_inferred_schema_round_trips_on_random_frames(
    data: dict[str, list[object]], via_csv: bool
) -> None:
    frame = pd.DataFrame(data)
    if via_csv:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        buffer.seek(0)
        frame = pd.read_csv(buffer)
    text = yaml.safe_dump(infer_schema(frame, max_categories=3))
    _, report = validate(frame, parse_schema(yaml.safe_load(text)), source="sample")
    assert report.failures == []
