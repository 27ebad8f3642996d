"""Validation: one test per rule and severity, the report, and the cleaned frame."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.data.schema import Schema, parse_schema
from conveyor.data.validation import Failure, require_valid, validate
from conveyor.errors import ConfigError, DataValidationError

SOURCE = "data/input.csv"


def check(
    columns: dict[str, Any], data: dict[str, list[Any]] | pd.DataFrame, **sections: Any
) -> tuple[pd.DataFrame, Any]:
    """Validate ``data`` against a schema built from ``columns`` plus table/checks sections."""
    schema = parse_schema({"columns": columns, **sections})
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    return validate(frame, schema, source=SOURCE)


def only(report: Any) -> Failure:
    """The single failure of a report."""
    assert len(report.failures) == 1, report.failures
    return report.failures[0]


# --- table rules --------------------------------------------------------------------------------


def test_clean_frame_passes_untouched() -> None:
    clean, report = check({"a": {"dtype": "int"}, "b": {}}, {"a": [1, 2], "b": ["x", "y"]})
    assert report.passed
    assert report.failures == []
    assert (report.rows_in, report.rows_out, report.columns) == (2, 2, 2)
    assert report.source == SOURCE
    pd.testing.assert_frame_equal(clean, pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))


def test_missing_required_column_is_an_error_naming_it() -> None:
    _, report = check({"a": {"dtype": "int"}, "b": {}}, {"a": [1, 2]})
    failure = only(report)
    assert (failure.column, failure.check, failure.severity) == (
        "b",
        "required column is missing",
        "error",
    )
    assert not report.passed
    assert "column 'b' check 'required column is missing'" in report.error_message()


def test_missing_optional_column_is_fine() -> None:
    _, report = check({"a": {"dtype": "int"}, "b": {}}, {"a": [1, 2]}, table={"required": ["a"]})
    assert report.passed
    assert report.failures == []


@pytest.mark.parametrize("policy", ["error", "warn", "drop"])
def test_extra_column_policy(policy: str) -> None:
    clean, report = check(
        {"a": {"dtype": "int"}}, {"a": [1, 2], "b": [3, 4]}, table={"extra_columns": policy}
    )
    failure = only(report)
    assert (failure.column, failure.check, failure.severity) == (
        "b",
        "column not in schema",
        policy,
    )
    assert report.passed is (policy != "error")
    assert list(clean.columns) == (["a"] if policy == "drop" else ["a", "b"])
    assert report.columns == len(clean.columns)
    assert report.rows_out == 2


def test_extra_column_allowed() -> None:
    clean, report = check(
        {"a": {"dtype": "int"}}, {"a": [1, 2], "b": [3, 4]}, table={"extra_columns": "allow"}
    )
    assert report.failures == []
    assert list(clean.columns) == ["a", "b"]


def test_empty_schema_accepts_any_columns() -> None:
    clean, report = validate(pd.DataFrame({"z": [1]}), Schema(), source=SOURCE)
    assert report.passed
    assert list(clean.columns) == ["z"]


def test_min_rows() -> None:
    _, report = check({"a": {"dtype": "int"}}, {"a": [1, 2]}, table={"min_rows": 3})
    failure = only(report)
    assert failure.column is None
    assert failure.check == "min_rows 3"
    assert failure.severity == "error"
    assert not report.passed
    _, report = check({"a": {"dtype": "int"}}, {"a": [1, 2, 3]}, table={"min_rows": 3})
    assert report.passed


# --- types --------------------------------------------------------------------------------------


def test_int_dtype_failures_name_rows_and_values() -> None:
    huge = str(2**53 + 2)
    clean, report = check(
        {"a": {"dtype": "int"}}, {"a": ["1", "seven", "1.5", huge, "-3", None, "4"]}
    )
    failure = only(report)
    assert (failure.column, failure.check, failure.severity) == ("a", "dtype int", "error")
    assert failure.count == 3
    assert failure.rows == [2, 3, 4]  # 1-based data rows
    assert failure.values == ["seven", "1.5", huge]
    assert not report.passed
    # What cannot be converted becomes missing, so the column is float.
    assert clean["a"].dtype == np.float64
    assert clean["a"].isna().tolist() == [False, True, True, True, False, True, False]
    assert clean["a"].dropna().tolist() == [1.0, -3.0, 4.0]


def test_int_dtype_accepts_whole_floats_and_numeric_text() -> None:
    clean, report = check({"a": {"dtype": "int"}}, {"a": ["1", "2.0", " 3 "]})
    assert report.passed
    assert clean["a"].dtype == np.int64
    assert clean["a"].tolist() == [1, 2, 3]


def test_int_dtype_accepts_2_pow_53_and_rejects_beyond() -> None:
    _, report = check({"a": {"dtype": "int"}}, {"a": [2**53, -(2**53)]})
    assert report.passed
    _, report = check({"a": {"dtype": "int"}}, {"a": [1, 2**60]})
    assert only(report).rows == [2]
    assert only(report).values == [2**60]


@pytest.mark.parametrize("value", ["inf", np.inf, "-inf"])
def test_int_dtype_rejects_inf_without_warnings(value: object) -> None:
    _, report = check({"a": {"dtype": "int"}}, {"a": [1, value]})
    failure = only(report)
    assert failure.check == "dtype int"
    assert failure.rows == [2]
    assert failure.values == [str(value) if isinstance(value, str) else "inf"]


@pytest.mark.parametrize("value", ["inf", np.inf, "-inf", -np.inf])
def test_float_dtype_rejects_infinity(value: object) -> None:
    clean, report = check({"a": {"dtype": "float"}}, {"a": [1.5, value, 2.5]})
    failure = only(report)
    assert (failure.column, failure.check, failure.rows) == ("a", "dtype float", [2])
    assert failure.values == [str(value) if isinstance(value, str) else str(float(value))]
    assert np.isnan(clean["a"][1])


def test_float_dtype_reports_text() -> None:
    _, report = check({"a": {"dtype": "float"}}, {"a": ["1e3", "n/a?", "2.5"]})
    failure = only(report)
    assert (failure.rows, failure.values) == ([2], ["n/a?"])


def test_bool_mapping() -> None:
    clean, report = check(
        {"a": {"dtype": "bool"}},
        {"a": ["yes", "No", "TRUE", "0", "1", " f ", "y", "N", "maybe", None]},
    )
    failure = only(report)
    assert (failure.check, failure.rows, failure.values) == ("dtype bool", [9], ["maybe"])
    assert str(clean["a"].dtype) == "boolean"
    expected = [True, False, True, False, True, False, True, False, pd.NA, pd.NA]
    assert clean["a"].tolist() == expected


def test_bool_dtype_keeps_real_booleans() -> None:
    clean, report = check({"a": {"dtype": "bool"}}, {"a": [True, False, None]})
    assert report.passed
    assert clean["a"].tolist() == [True, False, pd.NA]


def test_datetime_parse_failures() -> None:
    clean, report = check(
        {"a": {"dtype": "datetime"}}, {"a": ["2020-01-01", "not a date", "2020-02-03", None]}
    )
    failure = only(report)
    assert (failure.check, failure.rows, failure.values) == (
        "dtype datetime",
        [2],
        ["not a date"],
    )
    assert clean["a"][0] == pd.Timestamp("2020-01-01", tz="UTC")
    assert pd.isna(clean["a"][1])


def test_datetime_first_value_bad_emits_no_warning() -> None:
    _, report = check({"a": {"dtype": "datetime"}}, {"a": ["junk", "2020-01-01"]})
    assert only(report).rows == [1]


def test_datetime_accepts_mixed_iso_8601() -> None:
    _, report = check({"a": {"dtype": "datetime"}}, {"a": ["2020-01-01", "2021-05-06T10:00:00"]})
    assert report.failures == []


def test_type_failure_uses_column_severity() -> None:
    _, report = check({"a": {"dtype": "int", "severity": "warn"}}, {"a": ["1", "x"]})
    assert only(report).severity == "warn"
    assert report.passed


# --- column checks ------------------------------------------------------------------------------


def test_not_null() -> None:
    _, report = check({"a": {"nullable": False}}, {"a": ["x", None, "y", None]})
    failure = only(report)
    assert (failure.column, failure.check, failure.rows, failure.count) == (
        "a",
        "not null",
        [2, 4],
        2,
    )


def test_not_null_is_judged_on_the_original_values() -> None:
    """Text in an int column is missing after conversion: reported as dtype, not as null."""
    _, report = check({"a": {"dtype": "int", "nullable": False}}, {"a": ["1", "x", None]})
    by_check = {f.check: f for f in report.failures}
    assert set(by_check) == {"dtype int", "not null"}
    assert by_check["dtype int"].rows == [2]
    assert by_check["not null"].rows == [3]


def test_unique_ignores_missing_values() -> None:
    _, report = check({"a": {"dtype": "int", "unique": True}}, {"a": [1, 2, 1, None, None, 3]})
    failure = only(report)
    assert (failure.check, failure.rows, failure.values) == ("unique", [1, 3], [1.0, 1.0])


def test_min_and_max() -> None:
    _, report = check(
        {"a": {"dtype": "float", "min": 0, "max": 10}}, {"a": [-1.5, 0, 10, 10.5, None]}
    )
    by_check = {f.check: f for f in report.failures}
    assert set(by_check) == {"min >= 0", "max <= 10"}
    assert (by_check["min >= 0"].rows, by_check["min >= 0"].values) == ([1], [-1.5])
    assert (by_check["max <= 10"].rows, by_check["max <= 10"].values) == ([4], [10.5])


def test_allowed_numbers_on_a_numeric_column() -> None:
    _, report = check({"a": {"dtype": "int", "allowed": [1, 2]}}, {"a": ["1", "2", "3"]})
    failure = only(report)
    assert (failure.check, failure.rows, failure.values) == ("allowed values", [3], [3])


def test_allowed_numbers_on_a_text_column_compare_as_text() -> None:
    """YAML reads ``allowed: [1, 2]`` as numbers; a category column compares them as text."""
    _, report = check({"a": {"dtype": "category", "allowed": [1, 2]}}, {"a": [1, 2, 3]})
    failure = only(report)
    assert (failure.rows, failure.values) == ([3], ["3"])
    _, report = check({"a": {"dtype": "string", "allowed": [1, 2]}}, {"a": ["1", "2"]})
    assert report.failures == []


def test_allowed_strings_skip_missing_values() -> None:
    _, report = check({"a": {"allowed": ["x", "y"]}}, {"a": ["x", "z", None, "y"]})
    failure = only(report)
    assert (failure.rows, failure.values) == ([2], ["z"])


def test_regex() -> None:
    _, report = check({"a": {"regex": r"^A\d+$"}}, {"a": ["A1", "B2", "A", None, "A22"]})
    failure = only(report)
    assert failure.check == r"regex ^A\d+$"
    assert (failure.rows, failure.values) == ([2, 3], ["B2", "A"])


def test_values_are_sampled_but_counted_in_full() -> None:
    _, report = check({"a": {"dtype": "int", "min": 0}}, {"a": [-1] * 8})
    failure = only(report)
    assert failure.count == 8
    assert failure.rows == [1, 2, 3, 4, 5]
    assert failure.positions is not None
    assert failure.positions.sum() == 8
    assert "8 rows (rows 1, 2, 3, 4, 5, ...; values -1, -1, -1, -1, -1, ...)" in (
        failure.describe()
    )


# --- row checks ---------------------------------------------------------------------------------

WAGES = {"unit": {}, "wage": {"dtype": "float"}}


def test_row_check_with_when_and_require() -> None:
    _, report = check(
        WAGES,
        {"unit": ["Hour", "Year", "Hour", "Hour"], "wage": [500.0, 90000.0, 20.0, 400.0]},
        checks={"hourly": {"when": "unit == 'Hour'", "require": "wage <= 400"}},
    )
    failure = only(report)
    assert failure.column is None
    assert failure.check == "hourly: wage <= 400"
    assert (failure.rows, failure.values, failure.severity) == ([1], [500.0], "error")


def test_row_check_without_when_applies_to_every_row() -> None:
    _, report = check(
        {"low": {"dtype": "int"}, "high": {"dtype": "int"}},
        {"low": [1, 5, 2], "high": [2, 3, 2]},
        checks={"ordered": {"require": "low <= high", "severity": "warn"}},
    )
    failure = only(report)
    assert (failure.rows, failure.severity) == ([2], "warn")
    assert report.passed


def test_row_check_missing_values_count_as_failing() -> None:
    _, report = check(
        WAGES,
        {"unit": ["Hour", "Hour", None], "wage": [10.0, None, 999.0]},
        checks={"hourly": {"when": "unit == 'Hour'", "require": "wage <= 400"}},
    )
    # Row 2: wage missing fails `require`; row 3: a missing unit does not satisfy `when`.
    assert only(report).rows == [2]


def test_row_check_bad_expression_names_the_check() -> None:
    with pytest.raises(ConfigError, match=r"checks\.broken\.require: unknown column 'nope'"):
        check(WAGES, {"unit": ["Hour"], "wage": [1.0]}, checks={"broken": {"require": "nope > 1"}})
    with pytest.raises(ConfigError, match=r"checks\.bad_when\.when: not a valid expression"):
        check(
            WAGES,
            {"unit": ["Hour"], "wage": [1.0]},
            checks={"bad_when": {"when": "unit ==", "require": "wage > 0"}},
        )


def test_row_check_on_an_unknown_column_names_the_frame_columns() -> None:
    # No columns declared: the names are checked against the data itself.
    schema = parse_schema({"checks": {"c": {"when": "unit == 'Hour'", "require": "wagee < 9"}}})
    with pytest.raises(ConfigError) as info:
        validate(pd.DataFrame({"unit": ["Hour"], "wage": [1.0]}), schema, source=SOURCE)
    assert str(info.value) == (
        "schema: checks.c.require: unknown column 'wagee' (did you mean 'wage'?); "
        "the columns are 'unit', 'wage'"
    )


def test_row_check_that_cannot_apply_to_the_values_names_the_check_and_piece() -> None:
    with pytest.raises(ConfigError) as info:
        check(WAGES, {"unit": ["Hour"], "wage": [1.0]}, checks={"c": {"require": "wage > 'x'"}})
    assert str(info.value).startswith(
        "schema: checks.c.require: cannot evaluate \"wage > 'x'\": Invalid comparison"
    )
    with pytest.raises(ConfigError, match=r"checks\.c\.when: 'wage' gives float64 values"):
        check(
            WAGES,
            {"unit": ["Hour"], "wage": [1.0]},
            checks={"c": {"when": "wage", "require": "1 < 2"}},
        )


def test_row_check_may_read_extra_columns_when_they_are_allowed() -> None:
    _, report = check(
        {"wage": {"dtype": "float"}},
        {"wage": [1.0, 2.0], "bonus": [5.0, -3.0]},
        table={"extra_columns": "allow"},
        checks={"c": {"require": "wage + bonus > 0"}},
    )
    assert only(report).rows == [2]


def test_row_check_not_equal_is_false_on_a_missing_value() -> None:
    _, report = check(
        WAGES,
        {"unit": ["Hour", "Year", None], "wage": [1.0, 2.0, 3.0]},
        checks={"not_hourly": {"require": "unit != 'Hour'"}},
    )
    assert only(report).rows == [1, 3]


def test_row_check_reads_odd_column_names_in_backticks() -> None:
    _, report = check(
        {"wage (USD)": {"dtype": "float"}, "unit of wage": {}},
        {"wage (USD)": [500.0, 20.0], "unit of wage": ["Hour", "Hour"]},
        checks={"c": {"when": "`unit of wage` == 'Hour'", "require": "`wage (USD)` <= 400"}},
    )
    failure = only(report)
    assert (failure.check, failure.rows, failure.values) == ("c: `wage (USD)` <= 400", [1], [500.0])


def test_row_check_quotes_the_values_of_the_first_column_it_requires() -> None:
    _, report = check(
        {"low": {"dtype": "int"}, "high": {"dtype": "int"}},
        {"low": [5, 1], "high": [3, 2]},
        checks={"ordered": {"require": "(low <= high) & notna(low)"}},
    )
    assert (only(report).rows, only(report).values) == ([1], [5])


@pytest.mark.parametrize(
    ("data", "checks", "rows"),
    [
        ({"n": [1, 2, 3]}, {"c": {"require": "n in [1, 3]"}}, [2]),
        ({"n": [1, 2, 3]}, {"c": {"require": "n % 2 == 1 or n == 2", "when": "n > 1"}}, []),
        ({"n": [1, 2, 3]}, {"c": {"require": "1 < 2"}}, []),
        ({"n": [1, 2, 3]}, {"c": {"require": "1 > 2", "when": "n == 2"}}, [2]),
    ],
)
def test_row_check_forms(
    data: dict[str, list[Any]], checks: dict[str, Any], rows: list[int]
) -> None:
    _, report = check({"n": {"dtype": "int"}}, data, checks=checks)
    assert [r for f in report.failures for r in f.rows] == rows


def test_row_check_on_a_missing_column_reports_the_column() -> None:
    _, report = check(
        WAGES, {"unit": ["Hour"]}, checks={"c": {"when": "unit == 'Hour'", "require": "wage < 9"}}
    )
    assert ("wage", "required column is missing") in {(f.column, f.check) for f in report.errors}


# --- primary key --------------------------------------------------------------------------------


def test_primary_key_duplicates_single_column() -> None:
    _, report = check({"id": {"dtype": "int"}}, {"id": [1, 2, 1, 3]}, table={"primary_key": "id"})
    failure = only(report)
    assert failure.column is None
    assert failure.check == "primary key id unique"
    assert (failure.rows, failure.values, failure.severity) == ([1, 3], [1, 1], "error")


def test_primary_key_duplicates_composite() -> None:
    columns = {"k": {"dtype": "int"}, "j": {}}
    data = {"k": [1, 1, 1, 2], "j": ["a", "b", "a", "a"]}
    _, report = check(columns, data, table={"primary_key": ["k", "j"]})
    failure = only(report)
    assert failure.check == "primary key k+j unique"
    assert failure.rows == [1, 3]
    _, report = check(
        columns, {"k": [1, 1, 2], "j": ["a", "b", "a"]}, table={"primary_key": ["k", "j"]}
    )
    assert report.passed


# --- severities ---------------------------------------------------------------------------------


def test_drop_removes_exactly_the_failing_rows_and_counts_them() -> None:
    clean, report = check(
        {"id": {}, "n": {"dtype": "int", "min": {"value": 1, "severity": "drop"}}},
        {"id": ["a", "b", "c", "d", "e"], "n": [5, 0, 3, -2, 1]},
    )
    assert report.passed
    assert (report.rows_in, report.rows_out) == (5, 3)
    assert report.count("drop") == 2
    assert report.to_dict()["dropped"] == 2
    assert clean["id"].tolist() == ["a", "c", "e"]
    assert clean.index.tolist() == [0, 1, 2]


def test_drop_counts_a_row_once_in_rows_out_when_two_checks_drop_it() -> None:
    clean, report = check(
        {"n": {"dtype": "int", "min": 1, "max": 5, "severity": "drop", "unique": True}},
        {"n": [9, 9, 2]},
    )
    assert report.count("drop") == 4  # 2 rows too big + 2 rows duplicated
    assert report.rows_out == 1
    assert clean["n"].tolist() == [2]


def test_drop_severity_on_types_and_nulls() -> None:
    clean, report = check(
        {"n": {"dtype": "int", "nullable": False, "severity": "drop"}},
        {"n": ["1", "x", None, "4"]},
    )
    assert report.passed
    assert report.count("drop") == 2
    assert clean["n"].tolist() == [1, 4]


def test_int_column_is_int64_after_its_bad_rows_are_dropped() -> None:
    clean, _ = check(
        {"n": {"dtype": "int", "nullable": False, "severity": "drop"}}, {"n": ["1", "x", None]}
    )
    assert clean["n"].dtype == np.int64


def test_fix_clips_to_min_and_max() -> None:
    clean, report = check(
        {
            "n": {
                "dtype": "int",
                "min": {"value": 0, "severity": "fix"},
                "max": {"value": 10, "severity": "fix"},
            }
        },
        {"n": [-3, 5, 20]},
    )
    assert report.passed
    assert report.count("fix") == 2
    assert report.to_dict()["fixed"] == 2
    assert report.rows_out == 3
    assert clean["n"].tolist() == [0, 5, 10]
    assert clean["n"].dtype == np.int64


def test_fix_keeps_missing_values() -> None:
    clean, _ = check(
        {"x": {"dtype": "float", "max": {"value": 1.0, "severity": "fix"}}}, {"x": [2.0, None]}
    )
    assert clean["x"][0] == 1.0
    assert np.isnan(clean["x"][1])


def test_fix_on_min_leaves_a_warn_max_alone() -> None:
    clean, _ = check(
        {
            "n": {
                "dtype": "int",
                "min": {"value": 0, "severity": "fix"},
                "max": {"value": 10, "severity": "warn"},
            }
        },
        {"n": [-3, 5, 20]},
    )
    assert clean["n"].tolist() == [0, 5, 20]


def test_warn_reports_only() -> None:
    clean, report = check({"n": {"dtype": "int", "min": 1, "severity": "warn"}}, {"n": [0, 1, 2]})
    assert report.passed
    assert report.count("warn") == 1
    assert report.to_dict()["warnings"] == 1
    assert report.errors == []
    assert clean["n"].tolist() == [0, 1, 2]


def test_error_fails_passed_but_keeps_the_rows() -> None:
    clean, report = check({"n": {"dtype": "int", "min": 1}}, {"n": [0, 1, 2]})
    assert not report.passed
    assert [f.check for f in report.errors] == ["min >= 1"]
    assert report.rows_out == 3
    assert len(clean) == 3


def test_require_valid_raises_naming_source_column_and_check() -> None:
    schema = parse_schema({"columns": {"age": {"dtype": "int", "min": 0}}})
    with pytest.raises(DataValidationError) as info:
        require_valid(pd.DataFrame({"age": [3, -7]}), schema, source=SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: validation failed (1 error checks)")
    assert "column 'age'" in message
    assert "check 'min >= 0'" in message
    assert "rows 2" in message
    assert "values -7" in message


def test_require_valid_returns_clean_frame_and_report_on_success() -> None:
    schema = parse_schema({"columns": {"age": {"dtype": "int", "min": 0, "severity": "warn"}}})
    clean, report = require_valid(pd.DataFrame({"age": [3, -7]}), schema, source=SOURCE)
    assert report.passed
    assert len(clean) == 2


# --- the report and the frame -------------------------------------------------------------------


def test_report_to_dict_is_json_serialisable() -> None:
    _, report = check(
        {
            "i": {"dtype": "int", "min": 0},
            "f": {"dtype": "float", "max": {"value": 1.0, "severity": "warn"}},
            "b": {"dtype": "bool"},
            "t": {"dtype": "datetime"},
        },
        {
            "i": np.array([-1, 2, 3], dtype=np.int64),
            "f": np.array([np.inf, 2.0, 0.5]),
            "b": ["true", "nah", "false"],
            "t": ["2020-01-01", "2020-01-02", "someday"],
        },
        table={"min_rows": 10},
    )
    data = report.to_dict()
    decoded = json.loads(json.dumps(data, allow_nan=False))
    assert decoded == data
    assert decoded["passed"] is False
    assert set(decoded) >= {"source", "rows_in", "rows_out", "failures", "schema_hash"}
    by_check = {(f["column"], f["check"]): f for f in decoded["failures"]}
    assert by_check[("i", "min >= 0")]["values"] == [-1]
    assert by_check[("f", "dtype float")]["values"] == ["inf"]
    assert by_check[("f", "max <= 1")]["values"] == [2.0]
    assert by_check[("b", "dtype bool")]["values"] == ["nah"]
    assert by_check[("t", "dtype datetime")]["values"] == ["someday"]
    assert by_check[(None, "min_rows 10")]["count"] == 3
    for failure in decoded["failures"]:
        assert "positions" not in failure


def test_report_records_the_schema_hash() -> None:
    schema = parse_schema({"columns": {"a": {"dtype": "int"}}})
    _, report = validate(pd.DataFrame({"a": [1]}), schema, source=SOURCE)
    assert report.schema_hash == schema.digest()


@pytest.mark.parametrize(
    ("values", "dtype"),
    [([1, 2, 3], np.int64), (["1", "2", "3"], np.int64), ([1, None, 3], np.float64)],
)
def test_int_columns_come_back_int64_unless_missing(values: list[Any], dtype: type) -> None:
    clean, report = check({"n": {"dtype": "int"}}, {"n": values})
    assert report.passed
    assert clean["n"].dtype == dtype


def test_float_column_from_ints_is_float64() -> None:
    clean, _ = check({"x": {"dtype": "float"}}, {"x": [1, 2]})
    assert clean["x"].dtype == np.float64


def test_index_comes_back_0_to_n_minus_1() -> None:
    frame = pd.DataFrame({"n": [5, 0, 7, 8]}, index=[10, 3, 99, 4])
    clean, report = check({"n": {"dtype": "int", "min": {"value": 1, "severity": "drop"}}}, frame)
    assert clean.index.tolist() == [0, 1, 2]
    assert clean["n"].tolist() == [5, 7, 8]
    assert only(report).rows == [2]  # positions, not index labels


def test_input_frame_is_not_modified() -> None:
    frame = pd.DataFrame({"n": ["1", "-2"]})
    check({"n": {"dtype": "int", "min": {"value": 0, "severity": "fix"}}}, frame)
    assert frame["n"].tolist() == ["1", "-2"]


# --- property -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(min_value=-1000, max_value=1000), min_size=0, max_size=30),
    low=st.integers(min_value=-1000, max_value=1000),
)
def test_drop_on_min_keeps_exactly_the_values_at_or_above_it(values: list[int], low: int) -> None:
    schema = parse_schema(
        {
            "columns": {"n": {"dtype": "int", "min": {"value": low, "severity": "drop"}}},
            "table": {"min_rows": 0},
        }
    )
    frame = pd.DataFrame({"n": pd.Series(values, dtype="int64")})
    clean, report = validate(frame, schema, source=SOURCE)
    kept = [v for v in values if v >= low]
    assert report.passed
    assert report.rows_out == len(kept) == len(clean)
    assert report.count("drop") == len(values) - len(kept)
    assert clean["n"].tolist() == kept
    assert not (clean["n"] < low).any()
